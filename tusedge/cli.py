"""The ``tusedge`` command: ``serve`` runs the server. ``main(argv) -> int`` so it can be tested."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from typing import Any

from tusedge import __version__
from tusedge.config import Settings, SettingsError

_SENTINEL: Any = object()


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; defaults are a sentinel so only given flags override TUSEDGE_* vars."""
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{f.metadata.get('help', '')} (env TUSEDGE_{f.name.upper()}; default {default!s})"
        if f.type == "bool" or isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=_SENTINEL,
                                help=help_text)  # fmt: skip
        else:
            parser.add_argument(flag, dest=f.name, default=_SENTINEL, metavar=f.name.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tusedge", description="tus 1.0.0 upload server and client")
    parser.add_argument("--version", action="version", version=f"tusedge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the upload server")
    _add_settings_flags(serve)
    cert = commands.add_parser("cert", help="write a self-signed TLS certificate and key for local HTTPS/HTTP3")
    cert.add_argument("--out", default="tusedge-tls", metavar="DIR", help="folder for cert.pem and key.pem")
    cert.add_argument("--host", action="append", default=[], metavar="NAME",
                      help="extra DNS name or IP (repeatable); localhost, 127.0.0.1, ::1 are always in")  # fmt: skip
    cert.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    sign = commands.add_parser("sign", help="print a pre-signed creation URL (the key: TUSEDGE_SIGNING_KEY)")
    sign.add_argument("url", help="the server's creation URL, e.g. https://uploads.example.org/files/")
    sign.add_argument("--expires-in", type=float, default=3600.0, metavar="SECONDS", help="default 3600")
    sign.add_argument("--max-size", metavar="SIZE", help="largest upload created with it (e.g. 20GiB)")
    from tusedge.admin.cli import add_commands as add_admin_commands
    from tusedge.admin.cli import add_uploads_command
    from tusedge.client.cli import add_commands

    add_commands(commands)
    add_admin_commands(commands)
    settings_flags = argparse.ArgumentParser(add_help=False)
    _add_settings_flags(settings_flags)
    add_uploads_command(commands, settings_flags)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name) is not _SENTINEL}
    return Settings.from_env(**given)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "uploads"):  # the commands that take the server's settings
        try:
            settings = settings_from_args(args)
        except SettingsError as exc:
            print(f"tusedge: {exc}", file=sys.stderr)
            return 2
        if args.command == "uploads":
            from tusedge.admin.cli import run_uploads

            return run_uploads(args, settings)
        from tusedge.server.serve import serve

        return serve(settings)
    if args.command == "cert":
        return _cert(args)
    if args.command == "sign":
        return _sign(args)
    if args.command == "doctor":
        from tusedge.admin.cli import run_doctor

        return run_doctor(args)
    if args.command in ("upload", "status"):
        from tusedge.client.cli import run_status, run_upload

        return run_upload(args) if args.command == "upload" else run_status(args)
    return 2


def _sign(args: argparse.Namespace) -> int:
    """The same key as the server's, from the same variable (never a flag: flags show in ps)."""
    import os
    import time

    from tusedge.config import parse_size
    from tusedge.signing import sign_url

    key = os.environ.get("TUSEDGE_SIGNING_KEY", "")
    if not key:
        print("tusedge: set TUSEDGE_SIGNING_KEY to the server's signing key", file=sys.stderr)
        return 2
    try:
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError:
        print(f"tusedge: bad --max-size {args.max_size!r}", file=sys.stderr)
        return 2
    print(sign_url(args.url, key.encode(), int(time.time() + args.expires_in), max_size))
    return 0


def _cert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tusedge.tls import spki_sha256, write_self_signed

    if args.days < 1:
        print("tusedge: --days must be at least 1", file=sys.stderr)
        return 2
    files = write_self_signed(Path(args.out), args.host, args.days)
    print(f"certificate: {files.certfile}")
    print(f"private key: {files.keyfile}")
    print(f"spki sha256: {spki_sha256(files.certfile.read_bytes())}")
    print(f"serve with:  tusedge serve --certfile {files.certfile} --keyfile {files.keyfile} [--http3]")
    return 0
