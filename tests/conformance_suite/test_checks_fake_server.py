"""The checks against a small in-memory tus server (an httpx MockTransport): they pass against a correct one, and
each fails against a server with the matching defect. The raw-socket checks (core.patch-partial-body, sum.trailer)
need a real socket and are left to the e2e tests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from dataclasses import dataclass, field

import httpx
import pytest

from conformance.runner import Result, Status, rule_ids, run

ENDPOINT = "http://tus.invalid/files/"
OPTIONS_HEADERS = {
    "Tus-Version": "1.0.0",
    "Tus-Extension": "creation,creation-with-upload,creation-defer-length,termination,checksum",
    "Tus-Checksum-Algorithm": "sha1,md5",
    "Tus-Max-Size": "1000",
}
# Everything the fake offers, except the checks that open a raw socket (there is no socket to open here).
RAW_SOCKET = {"core.patch-partial-body", "sum.trailer"}
RULES = [r for r in rule_ids() if r.split(".")[0] in ("core", "creation", "cwu", "defer", "sum", "term")]
RULES = [r for r in RULES if r not in RAW_SOCKET]


@dataclass
class Upload:
    length: int | None
    data: bytearray = field(default_factory=bytearray)
    metadata: str | None = None


@dataclass
class FakeTus:
    """A strict tus 1.0.0 server in memory; each ``defect`` breaks one rule on purpose."""

    defect: str = ""
    uploads: dict[str, Upload] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.headers.get("X-HTTP-Method-Override", request.method)
        if method == "OPTIONS":
            return httpx.Response(204, headers=OPTIONS_HEADERS)
        if request.headers.get("Tus-Resumable") != "1.0.0":
            return self.reply(412, {} if self.defect == "412-without-version" else {"Tus-Version": "1.0.0"})
        if method == "POST" and str(request.url) == ENDPOINT:
            return self.create(request)
        upload = self.uploads.get(request.url.path.rsplit("/", 1)[-1])
        if upload is None:
            return self.reply(404)
        if method == "HEAD":
            return self.head(upload)
        if method == "PATCH":
            return self.patch(request, upload)
        if method == "DELETE":
            if self.defect != "delete-keeps":
                del self.uploads[request.url.path.rsplit("/", 1)[-1]]
            return self.reply(204)
        return self.reply(405)

    def reply(self, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
        body = b"" if status < 400 else b"error\n"
        return httpx.Response(status, headers={"Tus-Resumable": "1.0.0", **(headers or {})}, content=body)

    def number(self, value: str | None) -> int | None:
        if value is None:
            return None
        if self.defect == "lenient-numbers":
            return int(value)
        if not value.isascii() or not value.isdigit():
            raise ValueError(value)
        return int(value)

    def create(self, request: httpx.Request) -> httpx.Response:
        try:
            length = self.number(request.headers.get("Upload-Length"))
        except ValueError:
            return self.reply(400)
        deferred = request.headers.get("Upload-Defer-Length")
        if (length is None) == (deferred is None) or (deferred is not None and deferred != "1"):
            return self.reply(400)
        if length is not None and length > 1000:
            return self.reply(413)
        metadata = request.headers.get("Upload-Metadata")
        if metadata is not None and not self.valid_metadata(metadata):
            return self.reply(400)
        key = str(next(self.ids)).rjust(8, "0")
        upload = self.uploads[key] = Upload(length, metadata=metadata)
        if request.content:
            upload.data += request.content
        return self.reply(201, {"Location": ENDPOINT + key, "Upload-Offset": str(len(upload.data))})

    def valid_metadata(self, value: str) -> bool:
        keys = set()
        for item in value.split(","):
            key, _, encoded = item.strip().partition(" ")
            if not key or " " in encoded or (key in keys and self.defect != "duplicate-keys"):
                return False
            keys.add(key)
            try:
                base64.b64decode(encoded, validate=True)
            except binascii.Error:
                return False
        return True

    def head(self, upload: Upload) -> httpx.Response:
        headers = {"Upload-Offset": str(len(upload.data))}
        if self.defect != "cacheable-head":
            headers["Cache-Control"] = "no-store"
        if upload.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.length)
        if upload.metadata is not None:
            headers["Upload-Metadata"] = upload.metadata
        return self.reply(200, headers)

    def patch(self, request: httpx.Request, upload: Upload) -> httpx.Response:
        if request.headers.get("Content-Type") != "application/offset+octet-stream":
            return self.reply(415)
        try:
            offset = self.number(request.headers.get("Upload-Offset"))
            length = self.number(request.headers.get("Upload-Length"))
        except ValueError:
            return self.reply(400)
        if offset is None:
            return self.reply(400)
        if offset != len(upload.data) and self.defect != "ignore-offset":
            return self.reply(409)
        if length is not None and upload.length is not None and length != upload.length:
            return self.reply(400)
        total = upload.length if upload.length is not None else length
        if total is not None and len(upload.data) + len(request.content) > total and self.defect != "overflow":
            return self.reply(413)
        checksum = request.headers.get("Upload-Checksum")
        if checksum is not None:
            algorithm, _, digest = checksum.partition(" ")
            if algorithm not in ("sha1", "md5") or not digest:
                return self.reply(400)
            actual = base64.b64encode(hashlib.new(algorithm, request.content).digest()).decode()
            if actual != digest and self.defect != "ignore-checksum":
                return self.reply(460)
        upload.length = total
        upload.data += request.content
        return self.reply(204, {"Upload-Offset": str(len(upload.data))})


def check_all(defect: str = "") -> dict[str, Result]:
    report = run(ENDPOINT, only=RULES, transport=httpx.MockTransport(FakeTus(defect)))
    return {result.rule: result for result in report.results}


def test_a_correct_server_passes_every_check_it_can_be_asked() -> None:
    results = check_all()
    assert sorted(results) == sorted(RULES)
    failed = {rule: r.reason for rule, r in results.items() if r.status is not Status.PASS}
    assert failed == {}
    assert results["creation.max-size-413"].reason == "413 for Upload-Length 1001"


@pytest.mark.parametrize(
    ("defect", "rule", "reason"),
    [
        ("412-without-version", "core.version-412", "412 without Tus-Version"),
        ("lenient-numbers", "core.numbers", "POST Upload-Length '+5' -> HTTP 201"),
        ("ignore-offset", "core.patch-offset-409", "while the offset is 3 answered HTTP 204"),
        ("overflow", "core.patch-beyond-length", "answered HTTP 204"),
        ("cacheable-head", "core.head-offset", "lacks no-store"),
        ("duplicate-keys", "creation.metadata", "a duplicate key ('a YQ==,a Yg==') -> HTTP 201"),
        ("ignore-checksum", "sum.460", "answered HTTP 204, expected 460"),
        ("delete-keeps", "term.after", "HEAD -> HTTP 200"),
    ],
)
def test_a_defect_fails_its_rule(defect: str, rule: str, reason: str) -> None:
    result = check_all(defect)[rule]
    assert result.status is Status.FAIL
    assert reason in result.reason
