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
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name) is not _SENTINEL}
    return Settings.from_env(**given)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            settings = settings_from_args(args)
        except SettingsError as exc:
            print(f"tusedge: {exc}", file=sys.stderr)
            return 2
        from tusedge.server.serve import serve

        return serve(settings)
    return 2
