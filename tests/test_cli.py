"""tusedge.cli: ``main(argv) -> int`` with bad settings, and one flag per Settings field. No server is started:
every case here stops before ``serve``."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

import pytest

from tusedge import __version__
from tusedge.cli import build_parser, main, settings_from_args
from tusedge.config import Settings, SettingsError


@pytest.fixture(autouse=True)
def _no_tusedge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads TUSEDGE_* from the environment; start each test without any."""
    for name in list(os.environ):
        if name.startswith("TUSEDGE_"):
            monkeypatch.delenv(name)


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = subparsers.choices["serve"]
    assert isinstance(serve, argparse.ArgumentParser)
    return serve


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "x"], "port"),
        (["serve", "--port", "70000"], "port"),
        (["serve", "--base-path", "files"], "base_path"),
        (["serve", "--http3"], "http3"),
        (["serve", "--certfile", "/c.pem"], "keyfile"),
        (["serve", "--workers", "0"], "workers"),
        (["serve", "--max-size-bytes", "12 parsecs"], "max_size_bytes"),
        (["serve", "--max-size-bytes", "1e400"], "max_size_bytes"),
        (["serve", "--write-buffer-bytes", "1k"], "write_buffer_bytes"),
        (["serve", "--log-level", "loud"], "log_level"),
        (["serve", "--expiry-s", "-5"], "expiry_s"),
    ],
)
def test_bad_settings_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A setting we cannot use ends the command with exit code 2 and one line naming it; no traceback."""
    # Checked first so that a value the code wrongly accepts fails here instead of starting a server.
    with pytest.raises(SettingsError):
        settings_from_args(build_parser().parse_args(argv))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tusedge: ")
    assert message in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_environment_setting_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TUSEDGE_PORT", "eighty")
    with pytest.raises(SettingsError):
        settings_from_args(build_parser().parse_args(["serve"]))
    assert main(["serve"]) == 2
    assert "port" in capsys.readouterr().err


def test_unknown_environment_setting_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TUSEDGE_NO_SUCH_THING", "1")
    with pytest.raises(SettingsError):
        settings_from_args(build_parser().parse_args(["serve"]))
    assert main(["serve"]) == 2
    assert "TUSEDGE_NO_SUCH_THING" in capsys.readouterr().err


def test_flag_beats_environment_which_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """STYLE habit 5: defaults, then TUSEDGE_*, then flags (sentinel defaults, as in Hypercorn)."""
    monkeypatch.setenv("TUSEDGE_PORT", "9000")
    monkeypatch.setenv("TUSEDGE_FSYNC", "false")
    parser = build_parser()
    from_env = settings_from_args(parser.parse_args(["serve"]))
    assert from_env.port == 9000
    assert from_env.fsync is False
    assert from_env.host == Settings().host
    from_flags = settings_from_args(parser.parse_args(["serve", "--port", "8081", "--fsync"]))
    assert from_flags.port == 8081
    assert from_flags.fsync is True


def test_flags_convert_like_the_environment() -> None:
    args = build_parser().parse_args(
        ["serve", "--max-size-bytes", "20GiB", "--no-preallocate", "--cors-origins", "https://a, https://b"]
    )
    settings = settings_from_args(args)
    assert settings.max_size_bytes == 20 * 1024**3
    assert settings.preallocate is False
    assert settings.cors_origins == ("https://a", "https://b")


def test_one_flag_per_settings_field() -> None:
    """Every Settings field can be set on the command line, under its own name, and nothing else can."""
    serve = _serve_parser()
    dests = {action.dest for action in serve._actions if action.dest != "help"}
    assert dests == {f.name for f in fields(Settings)}
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        action = serve._option_string_actions[flag]
        assert action.dest == f.name
        assert f"TUSEDGE_{f.name.upper()}" in (action.help or "")
        if isinstance(f.default, bool):
            assert serve._option_string_actions["--no-" + f.name.replace("_", "-")] is action


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--prot", "1"])
    assert info.value.code == 2
    assert "--prot" in capsys.readouterr().err


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tusedge {__version__}"


def test_cert_with_no_valid_days_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cert", "--days", "0", "--out", str(tmp_path)]) == 2
    assert "--days" in capsys.readouterr().err
