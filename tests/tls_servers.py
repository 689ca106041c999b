"""tusedge servers over TLS for the HTTP/2 and HTTP/3 tests: a certificate from ``tusedge cert``, and a
server started with it."""

from __future__ import annotations

from pathlib import Path

from server_process import ServerFactory, ServerProcess

from tusedge.cli import main as tusedge_main


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    """``tusedge cert`` into tmp_path; returns (certfile, keyfile)."""
    out = tmp_path / "tls"
    assert tusedge_main(["cert", "--out", str(out)]) == 0
    return out / "cert.pem", out / "key.pem"


def https_server(server_factory: ServerFactory, tmp_path: Path, *flags: str) -> tuple[ServerProcess, Path]:
    """A server on ``https://`` with a fresh self-signed certificate; returns (server, certfile)."""
    certfile, keyfile = make_cert(tmp_path)
    server = server_factory("--certfile", str(certfile), "--keyfile", str(keyfile), *flags)
    assert server.scheme == "https"
    return server, certfile
