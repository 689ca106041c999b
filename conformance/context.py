"""What a check works with: the server's advertised capabilities and an HTTP session with tus helpers.

Checks raise :class:`CheckFailed` (the server broke the rule) or :class:`CheckSkipped` (the rule cannot be
tested against this server); whatever a check returns is the detail of its PASS line.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from conformance.parsing import missing_variant, parse_list, parse_non_negative_int

TUS_VERSION = "1.0.0"
OCTET = "application/offset+octet-stream"
HeaderMap = Mapping[str, str | bytes]


class CheckFailed(Exception):
    """The server broke the rule; the message says how."""


class CheckSkipped(Exception):
    """The rule cannot be tested against this server; the message says why."""


@dataclass(frozen=True)
class ServerInfo:
    """What OPTIONS on the creation endpoint advertised."""

    status: int
    versions: tuple[str, ...]
    extensions: frozenset[str]
    max_size: int | None
    checksum_algorithms: tuple[str, ...]
    headers: httpx.Headers

    @classmethod
    def from_response(cls, response: httpx.Response) -> ServerInfo:
        try:
            max_size = parse_non_negative_int(response.headers.get("Tus-Max-Size"))
        except ValueError:
            max_size = None  # core.options reports it
        return cls(
            status=response.status_code,
            versions=tuple(parse_list(response.headers.get("Tus-Version"))),
            extensions=frozenset(e.lower() for e in parse_list(response.headers.get("Tus-Extension"))),
            max_size=max_size,
            checksum_algorithms=tuple(a.lower() for a in parse_list(response.headers.get("Tus-Checksum-Algorithm"))),
            headers=response.headers,
        )


def describe(response: httpx.Response) -> str:
    """``HTTP 400 ("bad offset")`` - the status and the start of the body, for FAIL reasons."""
    text = ""
    if response.request.method != "HEAD" and response.is_stream_consumed:
        text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}" + (f" ({text[:80]!r})" if text else "")


class Context:
    """One check's view of the server. Uploads made through :meth:`create` are deleted after the check when the
    server offers termination."""

    def __init__(
        self,
        client: httpx.Client,
        endpoint: str,
        info: ServerInfo,
        *,
        ours: bool = False,
        extra_headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        expiry_wait_s: float = 15.0,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.info = info
        self.ours = ours
        self.extra_headers = dict(extra_headers or {})
        self.timeout_s = timeout_s
        self.expiry_wait_s = expiry_wait_s
        self.created: list[str] = []
        self._rng = random.Random()

    # --- outcome helpers -----------------------------------------------------------------------------
    @staticmethod
    def fail(reason: str) -> CheckFailed:
        return CheckFailed(reason)

    @staticmethod
    def skip(reason: str) -> CheckSkipped:
        return CheckSkipped(reason)

    def require(self, extension: str, why: str = "") -> None:
        if extension not in self.info.extensions:
            raise CheckSkipped(f"needs extension {extension}, not advertised" + (f" ({why})" if why else ""))

    def has(self, extension: str) -> bool:
        return extension in self.info.extensions

    # --- plain requests ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: HeaderMap | None = None,
        content: bytes | None = None,
        tus: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request. ``Tus-Resumable: 1.0.0`` goes along unless ``tus`` is false or ``headers`` names
        another value. With ``stream`` the body is left unread (and the response closed)."""
        merged: dict[str, str | bytes] = {"Tus-Resumable": TUS_VERSION} if tus else {}
        merged.update(headers or {})
        raw = [(k.encode("latin-1"), v if isinstance(v, bytes) else v.encode("latin-1")) for k, v in merged.items()]
        request = self.client.build_request(method, url, headers=raw, content=content)
        if content is None and method in ("POST", "PATCH"):
            request.headers["Content-Length"] = "0"
        if not stream:
            return self.client.send(request)
        response = self.client.send(request, stream=True)
        response.close()
        return response

    def options(self, url: str | None = None, headers: HeaderMap | None = None) -> httpx.Response:
        return self.request("OPTIONS", url or self.endpoint, headers=headers, tus=False)

    def post(self, headers: HeaderMap, content: bytes | None = None) -> httpx.Response:
        """POST to the creation endpoint; a resulting upload is remembered for cleanup."""
        response = self.request("POST", self.endpoint, headers=headers, content=content)
        location = response.headers.get("Location")
        if location:
            self.created.append(self.resolve(location))
        return response

    def head(self, url: str, headers: HeaderMap | None = None) -> httpx.Response:
        return self.request("HEAD", url, headers=headers)

    def patch(
        self,
        url: str,
        offset: int | str,
        body: bytes,
        *,
        headers: HeaderMap | None = None,
        content_type: str | None = OCTET,
    ) -> httpx.Response:
        merged: dict[str, str | bytes] = {"Upload-Offset": str(offset)}
        if content_type is not None:
            merged["Content-Type"] = content_type
        merged.update(headers or {})
        return self.request("PATCH", url, headers=merged, content=body)

    def delete(self, url: str, headers: HeaderMap | None = None) -> httpx.Response:
        return self.request("DELETE", url, headers=headers)

    def get(self, url: str, headers: HeaderMap | None = None) -> httpx.Response:
        return self.request("GET", url, headers=headers)

    def resolve(self, location: str) -> str:
        """An absolute URL for a ``Location`` (which "MAY be absolute or relative")."""
        return str(httpx.URL(self.endpoint).join(location))

    # --- setup steps: these FAIL with "setup:" when the server cannot do the basics ---------------------
    def create(
        self,
        length: int | None = None,
        *,
        headers: HeaderMap | None = None,
        body: bytes | None = None,
    ) -> str:
        """Create an upload (``length=None`` sends no ``Upload-Length``) and return its absolute URL."""
        self.require("creation", "to make a test upload")
        merged: dict[str, str | bytes] = {} if length is None else {"Upload-Length": str(length)}
        if body is not None:
            merged["Content-Type"] = OCTET
        merged.update(headers or {})
        response = self.post(merged, body)
        if response.status_code != 201 or not response.headers.get("Location"):
            sent = ", ".join(f"{key}: {value!r}" for key, value in merged.items())
            raise self.fail(
                f"setup: creating an upload ({sent}) answered {describe(response)}, expected 201 with Location"
            )
        return self.resolve(response.headers["Location"])

    def write(self, url: str, offset: int, body: bytes, headers: HeaderMap | None = None) -> httpx.Response:
        """PATCH that must succeed (204 with the new offset)."""
        response = self.patch(url, offset, body, headers=headers)
        expected = str(offset + len(body))
        if response.status_code != 204 or response.headers.get("Upload-Offset") != expected:
            raise self.fail(
                f"setup: PATCH of {len(body)} bytes at offset {offset} answered {describe(response)} with "
                f"Upload-Offset {response.headers.get('Upload-Offset')!r}, expected 204 with {expected}"
            )
        return response

    def offset(self, url: str) -> int:
        """``Upload-Offset`` of a HEAD, which must be there and be a number."""
        response = self.head(url)
        if response.status_code not in (200, 204):
            raise self.fail(f"HEAD {url} answered {describe(response)}")
        value = response.headers.get("Upload-Offset")
        try:
            number = parse_non_negative_int(value)
        except ValueError as exc:
            raise self.fail(f"HEAD: bad Upload-Offset: {exc}") from None
        if number is None:
            raise self.fail("HEAD response without Upload-Offset")
        return number

    def expect_offset(self, url: str, expected: int, after: str) -> None:
        actual = self.offset(url)
        if actual != expected:
            raise self.fail(f"after {after}, HEAD reports Upload-Offset {actual}, expected {expected} (unchanged)")

    def poll_offset(self, url: str, wanted: int, timeout_s: float) -> int | None:
        """HEAD until ``Upload-Offset`` equals ``wanted`` or time runs out; the last offset seen (None: none)."""
        deadline = time.monotonic() + timeout_s
        last: int | None = None
        while True:
            response = self.head(url)
            last = _safe_int(response.headers.get("Upload-Offset"))
            if last == wanted or time.monotonic() >= deadline:
                return last
            time.sleep(0.1)

    def missing_url(self) -> str:
        """The URL of an upload that does not exist, shaped like a real upload URL of this server."""
        if self.has("creation"):
            return missing_variant(self.create(1), self._rng)
        return missing_variant(self.endpoint.rstrip("/") + "/" + "0" * 32, self._rng)

    def cleanup(self) -> None:
        """Delete what this check created, newest first (finals before their partials)."""
        if not self.has("termination"):
            return
        for url in reversed(self.created):
            try:
                self.delete(url)
            except httpx.HTTPError:
                pass
        self.created.clear()


def _safe_int(value: str | None) -> int | None:
    try:
        return parse_non_negative_int(value)
    except ValueError:
        return None
