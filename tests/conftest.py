"""Shared fixtures: a real tusedge server process per test (Hypercorn on 127.0.0.1, a free port), and the
Node harness for tus-js-client. Test modules import helpers from ``server_process`` and ``js_harness``
(tests/ is on sys.path), never from this file."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hook_receiver import HookReceiver
from js_harness import node_executable
from postgres_server import PostgresServer
from server_process import ServerFactory, ServerProcess

__all__ = ["node_executable", "postgres", "postgres_url", "receiver", "server_factory", "tusedge_server"]

TESTS = Path(__file__).parent
# Folders whose tests drive real processes (servers, browsers, clients), and the fixtures that start one.
E2E_FOLDERS = (TESTS / "e2e", TESTS / "browser")
PROCESS_FIXTURES = frozenset({"server_factory", "tusedge_server", "postgres", "postgres_url"})
# Modules elsewhere whose tests start server processes themselves (the smoke runs of the benchmarks).
E2E_MODULES = frozenset(
    TESTS / name for name in ("test_benchmarks_smoke.py", "test_client_benchmark_smoke.py", "test_soak_smoke.py")
)


def pytest_configure(config: pytest.Config) -> None:
    """Tests interrupt client processes with SIGINT. A suite started in the background by a non-interactive
    shell (``bash .ci/run &``, a CI runner's job) inherits SIGINT as ignored, and every child would too: the
    interrupted client then uploads to the end and exits 0. Children of the suite get the default action."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every test that runs a subprocess server (``-m e2e`` selects them, ``-m "not e2e"``
    is the fast loop: unit tests and the in-process layer, tests/inprocess)."""
    for item in items:
        in_folder = any(item.path.is_relative_to(folder) for folder in E2E_FOLDERS) or item.path in E2E_MODULES
        if in_folder or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (a throwaway cluster on 127.0.0.1)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on it: its SQLAlchemy URL."""
    return postgres.create_database()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """``server_factory("--max-size-bytes", "100")`` starts a server with extra flags; all stop at teardown."""
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def tusedge_server(server_factory: ServerFactory) -> ServerProcess:
    """A server on its defaults, in a fresh data folder."""
    return server_factory()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    """A real hook receiver (an HTTP server in this process) for --hook-url; stopped at teardown."""
    hook = HookReceiver()
    try:
        yield hook
    finally:
        hook.close()
