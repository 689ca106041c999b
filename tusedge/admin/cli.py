"""The operator commands of ``tusedge``: ``doctor`` and ``uploads ...`` (registered by tusedge/cli.py)."""

from __future__ import annotations

import argparse


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
