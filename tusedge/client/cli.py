"""``tusedge upload`` and ``tusedge status``. Exit codes: 0 done, 1 failed (network, retries spent),
2 usage, 3 the server refused (a 4xx that cannot succeed)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx

from tusedge.client import resource
from tusedge.client.resume import ResumeStore
from tusedge.client.uploader import DEFAULT_CHUNK_BYTES, upload
from tusedge.config import parse_size
from tusedge.protocol.metadata import parse_metadata

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("upload", help="upload a file to a tus server (resumable, parallel)")
    up.add_argument("file", type=Path)
    up.add_argument("url", help="the server's creation URL, e.g. http://127.0.0.1:1080/files/")
    up.add_argument("--parallel", type=int, default=1, help="partial uploads at once (needs concatenation)")
    up.add_argument("--chunk-size", default=str(DEFAULT_CHUNK_BYTES), help="bytes per PATCH (e.g. 64MiB)")
    up.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    up.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    up.add_argument("--no-resume", action="store_true", help="do not look up or record this file's upload")
    up.add_argument("--store", type=Path, default=None, help="resume store (default: the user's cache dir)")
    status = commands.add_parser("status", help="show an upload's offset, length and metadata")
    status.add_argument("url")


def run_upload(args: argparse.Namespace) -> int:
    try:
        chunk = parse_size(args.chunk_size)
        metadata = dict(item.split("=", 1) for item in args.metadata)
        headers = dict((k.strip(), v.strip()) for k, v in (item.split(":", 1) for item in args.header))
    except ValueError:
        print("tusedge: bad --chunk-size, --metadata KEY=VALUE or --header NAME:VALUE", file=sys.stderr)
        return EXIT_USAGE
    if args.parallel < 1 or chunk < 1 or not args.file.is_file():
        print("tusedge: --parallel and --chunk-size must be positive and FILE a file", file=sys.stderr)
        return EXIT_USAGE
    store = None if args.no_resume else ResumeStore(args.store)
    try:
        result = asyncio.run(
            upload(args.file, args.url, parallel=args.parallel, chunk_size=chunk, metadata=metadata,
                   headers=headers, resume=not args.no_resume, store=store)
        )  # fmt: skip
    except resource.TusClientError as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return EXIT_REFUSED if 400 <= exc.status < 500 else EXIT_FAILED
    except (httpx.HTTPError, OSError) as exc:
        print(f"tusedge: upload failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if result.resumed_from:
        print(f"resumed: {result.resumed_from} bytes were already on the server", file=sys.stderr)
    print(result.url)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    try:
        response = httpx.head(args.url, headers=resource.TUS, timeout=30)
    except httpx.HTTPError as exc:
        print(f"tusedge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if response.status_code not in (200, 204):
        print(f"tusedge: HEAD {args.url}: {response.status_code}", file=sys.stderr)
        return EXIT_REFUSED
    h = response.headers
    print(f"offset:   {h.get('Upload-Offset', '(unfinished final upload)')}")
    print(f"length:   {h.get('Upload-Length', 'deferred' if h.get('Upload-Defer-Length') else '?')}")
    for key, value in parse_metadata(h.get("Upload-Metadata")).items():
        print(f"metadata: {key} = {value.decode('utf-8', errors='replace')}")
    for name in ("Upload-Expires", "Upload-Concat", "Upload-Checksum-Status"):
        if name in h:
            print(f"{name.lower().removeprefix('upload-')}: {h[name]}")
    return EXIT_OK
