"""``python -m conformance URL``: check a tus server against tus 1.0.0, one line per rule.

Exit status: 0 when no rule failed, 1 when at least one did, 2 for a usage error or an unreachable server.
"""

from __future__ import annotations

import argparse
import sys

from conformance import report
from conformance.runner import Report, Result, ServerUnreachable, checks, rule_ids, run, selected

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def header_pair(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Check a tus server over HTTP against the tus 1.0.0 protocol, one line per rule.",
        epilog="Exit status: 0 no rule failed, 1 some rule failed, 2 usage error or server unreachable.",
    )
    cli.add_argument("url", nargs="?", help="the upload creation endpoint, e.g. https://uploads.example.com/files/")
    cli.add_argument("--list", action="store_true", help="list the rules (id, extension, summary) and exit")
    cli.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PREFIX",
        help="run only rules starting with PREFIX (e.g. concat, core.patch); repeatable",
    )
    cli.add_argument(
        "--header",
        action="append",
        default=[],
        type=header_pair,
        metavar="NAME:VALUE",
        help="extra header for every request (e.g. 'Authorization: Bearer ...'); repeatable",
    )
    cli.add_argument("--timeout", type=positive, default=10.0, metavar="SECONDS", help="per request (default 10)")
    cli.add_argument("--ours", action="store_true", help="also run the ours.* rules (GET, CORS, error bodies)")
    cli.add_argument(
        "--expiry-wait",
        type=positive,
        default=15.0,
        metavar="SECONDS",
        help="exp.gone waits at most this long for a test upload to expire (default 15)",
    )
    cli.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    cli.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    return cli


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.list:
        for item in checks():
            print(f"{item.rule:28} {item.extension or ('ours' if item.ours else 'core'):26} {item.summary}")
        return EXIT_OK
    if args.url is None:
        cli.error("the URL of the creation endpoint is required")
    known = rule_ids()
    unknown = [prefix for prefix in args.only if not any(selected(rule, [prefix]) for rule in known)]
    if unknown:
        cli.error(f"--only {', '.join(unknown)} matches no rule (see --list)")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")

    def started(outcome: Report) -> None:
        print(report.banner(outcome), file=sys.stderr, flush=True)

    def show(result: Result) -> None:
        if not args.json:
            print(report.line(result), flush=True)

    try:
        outcome = run(
            args.url,
            only=args.only,
            headers=dict(args.header),
            timeout_s=args.timeout,
            ours=args.ours,
            verify_tls=not args.insecure,
            expiry_wait_s=args.expiry_wait,
            on_start=started,
            on_result=show,
        )
    except ServerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(report.to_json(outcome))
    else:
        print(outcome.summary)
    return EXIT_OK if outcome.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
