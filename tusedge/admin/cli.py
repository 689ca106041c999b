"""The operator commands of ``tusedge``: ``doctor`` and ``uploads ...`` (registered by tusedge/cli.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tusedge.config import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser("doctor", help="check this host's network and descriptor settings for uploads")
    doctor.add_argument("--rate-mbit", type=float, default=1000.0, metavar="MBIT",
                        help="the uploads' link rate to plan for (default 1000)")  # fmt: skip
    doctor.add_argument("--rtt-ms", type=float, default=100.0, metavar="MS",
                        help="their round-trip time to plan for (default 100: across a continent)")  # fmt: skip
    doctor.add_argument("--pid", type=int, default=None, help="a running server's process, for its descriptor limit")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")


def run_doctor(args: argparse.Namespace) -> int:
    from tusedge.admin.doctor import Target, examine, exit_status, process_nofile, render_json, render_text

    if args.rate_mbit <= 0 or args.rtt_ms <= 0:
        print("tusedge: --rate-mbit and --rtt-ms must be above 0")
        return 2
    target = Target(rate_mbit=args.rate_mbit, rtt_ms=args.rtt_ms)
    try:
        nofile = process_nofile(args.pid)
    except (OSError, ValueError) as exc:
        print(f"tusedge: cannot read the limits of process {args.pid}: {exc}")
        return 2
    findings = examine(target, nofile=nofile)
    print(render_json(findings, target) if args.json else render_text(findings, target), end="")
    return exit_status(findings)


def add_uploads_command(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                        settings_flags: argparse.ArgumentParser) -> None:  # fmt: skip
    """``tusedge uploads list|show|rm|gc``; ``settings_flags`` carries the server's flags (--data-dir, ...)."""
    uploads = commands.add_parser("uploads", help="list, show, remove and collect this node's uploads")
    actions = uploads.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False, parents=[settings_flags])
    common.add_argument("--json", action="store_true", help="machine-readable output")
    listing = actions.add_parser("list", parents=[common], help="uploads, least recently changed first")
    listing.add_argument("--state", default="live", metavar="STATES",
                         help="comma list of active, finishing, complete, failed, terminated, expired; or live "
                              "(the first four, the default) or all")  # fmt: skip
    listing.add_argument("--older-than", default=None, metavar="AGE",
                         help="only uploads unchanged for this long: 90s, 15m, 2h, 3d, 1w")  # fmt: skip
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    show = actions.add_parser("show", parents=[common], help="one upload, its file, and whether it is in use")
    show.add_argument("id")
    remove = actions.add_parser("rm", parents=[common], help="remove an upload as DELETE does (hooks included)")
    remove.add_argument("id")
    actions.add_parser("gc", parents=[common], help="one round of the reaper now: expire, finish, forget")


def run_uploads(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import sys

    from tusedge.admin.uploads import AdminError, parse_age, parse_states, render, run_command

    try:
        options: dict[str, Any] = {"id": getattr(args, "id", None)}
        if args.action == "list":
            options["states"] = parse_states(args.state)
            options["older_than"] = parse_age(args.older_than) if args.older_than else None
            options["limit"] = args.limit
        result = asyncio.run(run_command(settings, args.action, options))
    except ValueError as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return 2
    except AdminError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        print(f"tusedge: {exc}", file=sys.stderr)
        return 1
    print(render(result, args.json), end="")
    return 0
