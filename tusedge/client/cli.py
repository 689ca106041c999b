"""``tusedge upload`` and ``tusedge status``.

Exit codes (one place: ``exit_code``): 0 done; 1 failed (the file could not be read or changed, or an
unexpected answer); 2 usage; 3 the server refused (a 4xx that cannot succeed by trying again); 4 gave up
after retries (network errors or 5xx for longer than the retry budget — run the same command again to
resume); 5 the server's digest of the whole upload differs from the file's; 130 interrupted (Ctrl-C),
143 terminated (SIGTERM) — both resumable by running the same command again.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx

from tusedge.client import resource
from tusedge.client.errors import ClientError, GaveUp, TusClientError, VerificationFailed
from tusedge.client.pipe import upload_stream
from tusedge.client.progress import Progress, ProgressPrinter, format_bytes
from tusedge.client.retry import RetryPolicy
from tusedge.client.transport import HttpVersion, make_client
from tusedge.client.uploader import DEFAULT_CHUNK_BYTES, UploadOptions, UploadResult, upload
from tusedge.config import parse_size
from tusedge.protocol.metadata import parse_metadata

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_GAVE_UP, EXIT_MISMATCH = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
CHECKSUM_CHOICES = ("auto", "none", "sha256", "sha1", "sha512", "md5", "crc32")


class _Terminated(Exception):
    """SIGTERM arrived; the upload was cancelled."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("upload", help="upload a file to a tus server (resumable, parallel)")
    up.add_argument("file", type=Path, help="the file, or - for standard input (a stream of unknown length)")
    up.add_argument("--name", default="stdin", help="filename metadata of an upload from standard input")
    up.add_argument("url", help="the server's creation URL, e.g. http://127.0.0.1:1080/files/")
    up.add_argument("--parallel", type=int, default=1, help="partial uploads at once (needs concatenation)")
    up.add_argument("--chunk-size", default=str(DEFAULT_CHUNK_BYTES), help="bytes per PATCH (e.g. 64MiB)")
    http = up.add_mutually_exclusive_group()
    http.add_argument("--http2", dest="http", action="store_const", const="2", default="1.1",
                      help="HTTP/2 (prior knowledge on http://, ALPN on https://)")  # fmt: skip
    http.add_argument("--http3", dest="http", action="store_const", const="3", help="HTTP/3 over QUIC (https:// only)")
    up.add_argument("--connections", type=int, default=0, metavar="N",
                    help="HTTP/2 and /3: connections for the parts (0: one per part, the default; 1: one)")  # fmt: skip
    up.add_argument("--cacert", metavar="PEM", help="check the server's certificate against this file")
    up.add_argument("--insecure", action="store_true", help="do not check the server's TLS certificate")
    up.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="sent with every request")
    up.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    up.add_argument("--limit-rate", metavar="RATE", help="bandwidth cap in bytes/s for the whole upload (e.g. 10MiB)")
    up.add_argument("--checksum", choices=CHECKSUM_CHOICES, default="auto",
                    help="Upload-Checksum on each PATCH (auto: the best the server offers)")  # fmt: skip
    up.add_argument("--no-digest", action="store_true", help="do not declare the whole file's digest")
    up.add_argument("--compress", choices=("none", "zstd", "auto"), default="none",
                    help="zstd PATCH bodies where the server takes them (auto: if a sample saves >= 10%%)")  # fmt: skip
    up.add_argument("--retries", type=int, default=10, help="retries in a row before giving up (default 10)")
    up.add_argument("--retry-time", type=float, default=600.0, metavar="SECONDS",
                    help="give up after failing for this long in a row (default 600)")  # fmt: skip
    up.add_argument("--no-resume", action="store_true", help="do not look up or record this file's upload")
    up.add_argument("--store", type=Path, default=None, help="resume store (default: the user's cache dir)")
    up.add_argument("--quiet", action="store_true", help="no progress output")
    up.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS",
                    help="seconds between progress lines when stderr is not a terminal (default 5)")  # fmt: skip
    status = commands.add_parser("status", help="show an upload's offset, length, metadata and expiry")
    status.add_argument("url")
    status.add_argument("--cacert", metavar="PEM")
    status.add_argument("--insecure", action="store_true")


def _options(args: argparse.Namespace) -> UploadOptions:
    """The upload's options from the flags; ValueError with the reason when one is malformed."""
    try:
        chunk = parse_size(args.chunk_size)
        rate = parse_size(args.limit_rate) if args.limit_rate else None
    except ValueError:
        raise ValueError("--chunk-size and --limit-rate take sizes like 65536, 64MiB or 4g") from None
    metadata, headers = {}, {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata wants KEY=VALUE, not {item!r}")
        metadata[key] = value
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header wants NAME:VALUE, not {item!r}")
        headers[name.strip()] = value.strip()
    if args.retries < 0 or args.retry_time < 0 or args.progress_interval <= 0:
        raise ValueError("--retries and --retry-time must not be negative, --progress-interval positive")
    http: HttpVersion = args.http
    return UploadOptions(
        parallel=args.parallel,
        chunk_size=chunk,
        metadata=metadata,
        headers=headers,
        resume=not args.no_resume,
        store_path=args.store,
        retry=RetryPolicy(max_attempts=args.retries, total_budget_s=args.retry_time),
        rate_limit=rate,
        checksum=args.checksum,
        digest=not args.no_digest,
        compress=args.compress,
        http=http,
        connections=args.connections,
        verify=_verify(args),
    )


def _verify(args: argparse.Namespace) -> bool | str:
    return False if args.insecure else (str(args.cacert) if args.cacert else True)


async def _upload_with_progress(args: argparse.Namespace, options: UploadOptions) -> UploadResult:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    progress = Progress()
    printer = ProgressPrinter(progress, sys.stderr, interval_s=args.progress_interval)
    printing = None if args.quiet else asyncio.ensure_future(printer.run())
    try:
        if str(args.file) == "-":  # a stream of unknown length: creation-defer-length, no resume store
            result = await upload_stream(sys.stdin.buffer, args.url, options, name=args.name, progress=progress)
        else:
            result = await upload(args.file, args.url, options, progress=progress)
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if printing is not None:
            printing.cancel()
            await asyncio.gather(printing, return_exceptions=True)
    if printing is not None:
        printer.finish()
    return result


def exit_code(exc: BaseException) -> int:
    """The one place failures become exit codes."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, _Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, GaveUp):
        return EXIT_GAVE_UP
    if isinstance(exc, VerificationFailed):
        return EXIT_MISMATCH
    if isinstance(exc, TusClientError) and 400 <= exc.status < 500:
        return EXIT_REFUSED
    return EXIT_FAILED


def _message(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, _Terminated)):
        return "interrupted; run the same command again to resume"
    if isinstance(exc, GaveUp):
        return f"{exc}; run the same command again to resume"
    return str(exc) or type(exc).__name__


def run_upload(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
    except ValueError as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if str(args.file) != "-" and not args.file.is_file():
        print(f"tusedge: {args.file} is not a file", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    try:
        result = asyncio.run(_upload_with_progress(args, options))
    except (KeyboardInterrupt, _Terminated, ClientError, httpx.HTTPError, OSError) as exc:
        print(f"\ntusedge: {_message(exc)}", file=sys.stderr)
        return exit_code(exc)
    elapsed = time.monotonic() - started
    if not args.quiet:
        rate = result.bytes_sent / elapsed / 1e6 if elapsed > 0 else 0.0
        details = [
            f"{result.parts} part{'s' if result.parts > 1 else ''} over {result.http_version}",
            f"{format_bytes(result.resumed_from)} ({result.resumed_from} bytes) already on the server",
            f"{format_bytes(result.bytes_sent)} sent ({result.bytes_sent} bytes) in {elapsed:.1f} s, {rate:.1f} MB/s",
            f"{result.retries} retries",
            (f"zstd: {format_bytes(result.wire_bytes)} on the wire" if result.compression else "not compressed"),
            f"Upload-Checksum {result.checksum or 'off'}",
            f"whole-file digest {result.digest_status or 'not checked'}",
        ]
        print("done: " + ", ".join(details), file=sys.stderr)
    print(result.url)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    async def head() -> httpx.Response:
        async with make_client("1.1", verify=_verify(args), headers={}, timeout_s=30) as client:
            return await client.head(args.url, headers=resource.TUS)

    try:
        response = asyncio.run(head())
    except httpx.HTTPError as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if response.status_code not in (200, 204):
        print(f"tusedge: HEAD {args.url}: {response.status_code}", file=sys.stderr)
        return EXIT_REFUSED if 400 <= response.status_code < 500 else EXIT_FAILED
    h = response.headers
    print(f"offset:   {h.get('Upload-Offset', '(not yet: a final upload being joined)')}")
    print(f"length:   {h.get('Upload-Length', 'deferred' if h.get('Upload-Defer-Length') else '?')}")
    for key, value in parse_metadata(h.get("Upload-Metadata")).items():
        print(f"metadata: {key} = {value.decode('utf-8', errors='replace')}")
    for name in ("Upload-Expires", "Upload-Concat", "Upload-Checksum-Status"):
        if name in h:
            print(f"{name.lower().removeprefix('upload-')}: {h[name]}")
    return EXIT_OK
