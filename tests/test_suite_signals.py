"""The suite's own process set-up, which tests of interrupted clients rely on."""

from __future__ import annotations

import subprocess
import sys


def test_children_of_the_suite_can_be_interrupted_with_sigint() -> None:
    """A child process sees SIGINT with Python's default handler, not ignored (as a suite started in the
    background by a non-interactive shell would otherwise pass on): see pytest_configure in conftest.py."""
    shown = subprocess.run(
        [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "True"
