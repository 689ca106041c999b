"""Every TusError leaves through tusedge.server.responses, in one table: status and code per condition.

STYLE habit 1: "Typed errors, mapped once ... Only server/responses.py turns them into responses; anything
else is logged and becomes a 500 without a traceback in the body." Each case runs through a tiny Starlette
app with the same exception handlers as ``create_app``."""

from __future__ import annotations

import inspect
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import tusedge.errors as errors
from tusedge.errors import TusError
from tusedge.server.responses import handle_tus_error, handle_unexpected

MAPPING: dict[type[TusError], tuple[int, str]] = {
    errors.TusError: (400, "ERR_BAD_REQUEST"),
    errors.InvalidHeader: (400, "ERR_INVALID_HEADER"),
    errors.InvalidMetadata: (400, "ERR_INVALID_METADATA"),
    errors.LengthRequired: (400, "ERR_LENGTH_REQUIRED"),
    errors.LengthAlreadySet: (400, "ERR_LENGTH_ALREADY_SET"),
    errors.ChecksumAlgorithmUnsupported: (400, "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"),
    errors.InvalidConcat: (400, "ERR_INVALID_CONCAT"),
    errors.PartialUploadNotFound: (404, "ERR_PARTIAL_UPLOAD_NOT_FOUND"),
    errors.ModifyFinalUpload: (403, "ERR_MODIFY_FINAL"),
    errors.UploadNotFound: (404, "ERR_UPLOAD_NOT_FOUND"),
    errors.OffsetMismatch: (409, "ERR_MISMATCHED_OFFSET"),
    errors.UploadNotReady: (409, "ERR_UPLOAD_NOT_READY"),
    errors.UploadGone: (410, "ERR_UPLOAD_GONE"),
    errors.UnsupportedVersion: (412, "ERR_UNSUPPORTED_VERSION"),
    errors.MaxSizeExceeded: (413, "ERR_MAX_SIZE_EXCEEDED"),
    errors.ExceedsUploadLength: (413, "ERR_EXCEEDS_UPLOAD_LENGTH"),
    errors.UnsupportedContentType: (415, "ERR_INVALID_CONTENT_TYPE"),
    errors.UnsupportedContentEncoding: (415, "ERR_UNSUPPORTED_CONTENT_ENCODING"),
    errors.ContentDecodingFailed: (400, "ERR_CONTENT_DECODING"),
    errors.UploadFailed: (422, "ERR_UPLOAD_FAILED"),
    errors.UploadLocked: (423, "ERR_UPLOAD_LOCKED"),
    errors.UploadInterrupted: (423, "ERR_UPLOAD_INTERRUPTED"),
    errors.ChecksumMismatch: (460, "ERR_CHECKSUM_MISMATCH"),
    errors.InsufficientStorage: (507, "ERR_INSUFFICIENT_STORAGE"),
    errors.ServerBusy: (503, "ERR_SERVER_BUSY"),
    errors.ShuttingDown: (503, "ERR_SHUTTING_DOWN"),
    errors.TooManyRequests: (429, "ERR_TOO_MANY_REQUESTS"),
    errors.HookRefused: (403, "ERR_REFUSED_BY_HOOK"),
    errors.HookUnavailable: (503, "ERR_HOOK_UNAVAILABLE"),
    errors.SignatureRequired: (401, "ERR_SIGNATURE_REQUIRED"),
    errors.SignatureInvalid: (403, "ERR_SIGNATURE_INVALID"),
    errors.SignatureExpired: (403, "ERR_SIGNATURE_EXPIRED"),
    errors.IncompleteRequest: (400, "ERR_INCOMPLETE_REQUEST"),
    errors.UnexpectedBody: (413, "ERR_UNEXPECTED_BODY"),
    errors.FileTooLarge: (413, "ERR_FILE_TOO_LARGE"),
    errors.StorageUnavailable: (503, "ERR_STORAGE_UNAVAILABLE"),
    errors.StorageFailed: (500, "ERR_STORAGE_FAILED"),
    errors.ConflictingFraming: (400, "ERR_CONFLICTING_FRAMING"),
    errors.BodyUnknownThroughFront: (411, "ERR_BODY_UNKNOWN_THROUGH_FRONT"),
    errors.MalformedRequest: (400, "ERR_MALFORMED_REQUEST"),
    errors.RequestHeadTooLarge: (431, "ERR_HEADERS_TOO_LARGE"),
    errors.RequestTimeout: (408, "ERR_REQUEST_TIMEOUT"),
    errors.TooManyConnections: (429, "ERR_TOO_MANY_CONNECTIONS"),
    errors.TooManyUploads: (429, "ERR_TOO_MANY_UPLOADS"),
    errors.DescriptorsRunningOut: (503, "ERR_OUT_OF_DESCRIPTORS"),
    errors.UnsupportedTransferCoding: (501, "ERR_UNSUPPORTED_TRANSFER_CODING"),
}
# The pre-create hook picks its refusal's status: one class per 4xx, one condition (one code) for all.
HOOK_REFUSALS: dict[type[TusError], tuple[int, str]] = {
    errors.hook_refusal(status): (status, "ERR_REFUSED_BY_HOOK") for status in range(400, 500)
}
MAPPING.update(HOOK_REFUSALS)


def _all_tus_errors() -> set[type[TusError]]:
    found: set[type[TusError]] = set()
    pending: list[type[TusError]] = [TusError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    defined_here = {cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, TusError)}
    return {cls for cls in found if cls.__module__.startswith("tusedge")} | defined_here


def _app(exc: Exception) -> Starlette:
    async def endpoint(request: Request) -> Response:
        raise exc

    return Starlette(
        routes=[Route("/files/x", endpoint, methods=["GET", "HEAD", "POST", "PATCH", "DELETE"])],
        exception_handlers={TusError: handle_tus_error, Exception: handle_unexpected},
    )


async def _request(exc: Exception, method: str, content: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, "/files/x", content=content or None)


def test_every_tus_error_is_in_the_table() -> None:
    """Adding an error without deciding its status and code makes this test fail."""
    assert _all_tus_errors() == set(MAPPING)


@pytest.mark.parametrize(("cls", "status", "code"), [(cls, *sc) for cls, sc in MAPPING.items()], ids=lambda v: str(v))
def test_error_class_status_and_code(cls: type[TusError], status: int, code: str) -> None:
    assert cls.status == status
    assert cls.code == code
    assert cls().status == status
    assert "\n" not in cls.default_message and cls.default_message


def test_codes_are_unique() -> None:
    """One code per condition: the hook's refusals are one condition, whatever status the hook picked."""
    codes = [code for cls, (_, code) in MAPPING.items() if cls not in HOOK_REFUSALS or cls is errors.HookRefused]
    assert len(codes) == len(set(codes))
    assert {code for cls, (_, code) in MAPPING.items() if cls in HOOK_REFUSALS} == {errors.HookRefused.code}


@pytest.mark.parametrize("cls", list(MAPPING), ids=lambda c: c.__name__)
async def test_error_becomes_its_status_with_a_one_line_reason(cls: type[TusError]) -> None:
    """ours.errors: "every 4xx has a one-line reason in its body", after its code as tusd sends it
    (``ERR_...: reason``); core.resumable-everywhere: every response except those to OPTIONS carries
    Tus-Resumable: 1.0.0."""
    response = await _request(cls(), "PATCH", b"some body the route never read")
    status, code = MAPPING[cls]
    assert response.status_code == status
    assert response.text == f"{code}: {cls.default_message}\n"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("cls", list(MAPPING), ids=lambda c: c.__name__)
async def test_head_error_has_no_body(cls: type[TusError]) -> None:
    """core.head-missing: HEAD on an unknown upload is 404, and a HEAD response never has a body."""
    response = await _request(cls(), "HEAD")
    assert response.status_code == MAPPING[cls][0]
    assert response.content == b""
    assert response.headers["Tus-Resumable"] == "1.0.0"


async def test_error_headers_reach_the_response() -> None:
    """core.version-412: 412 "MUST include the Tus-Version header into the response"."""
    response = await _request(errors.UnsupportedVersion(headers={"Tus-Version": "1.0.0"}), "POST")
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize("cls", [cls for cls in MAPPING if cls.close_connection], ids=lambda c: c.__name__)
async def test_an_error_that_closes_the_connection_says_so_over_http1(cls: type[TusError]) -> None:
    """Framing in doubt, a head too large, a request too slow: the HTTP/1.1 connection is not reused."""
    response = await _request(cls(), "PATCH", b"body")
    assert response.headers["Connection"] == "close"
    assert "connection" not in (await _request(errors.OffsetMismatch(), "PATCH", b"body")).headers


async def test_a_missing_partial_upload_is_its_own_404() -> None:
    """A final naming a part that does not exist: an InvalidConcat of its own class, 404 rather than 400
    (a class, not a status narrowed per instance)."""
    response = await _request(errors.PartialUploadNotFound("partial upload x does not exist"), "POST")
    assert response.status_code == 404
    assert response.text == "ERR_PARTIAL_UPLOAD_NOT_FOUND: partial upload x does not exist\n"
    assert isinstance(errors.PartialUploadNotFound(), errors.InvalidConcat)
    assert errors.InvalidConcat().status == 400


async def test_a_hook_refusal_carries_the_hooks_status() -> None:
    """The pre-create hook's own 4xx, through the class of that status (no status is given per instance);
    an answer that is no 4xx refuses with 403."""
    response = await _request(errors.hook_refusal(413)("over quota"), "POST")
    assert response.status_code == 413
    assert response.text == "ERR_REFUSED_BY_HOOK: over quota\n"
    assert isinstance(errors.hook_refusal(413)(), errors.HookRefused)
    assert errors.hook_refusal(403) is errors.HookRefused
    assert errors.hook_refusal(500) is errors.hook_refusal(302) is errors.HookRefused


def test_no_error_takes_its_status_per_instance() -> None:
    """The status is the class's: TusError takes none as an argument."""
    assert "status" not in inspect.signature(TusError).parameters


async def test_messages_stay_on_one_line() -> None:
    response = await _request(errors.InvalidHeader("first\nsecond\nthird"), "GET")
    assert response.text == "ERR_INVALID_HEADER: first second third\n"


async def test_unexpected_error_is_a_logged_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tusedge"):
        response = await _request(RuntimeError("secret path /srv/data/x"), "PATCH", b"abc")
    assert response.status_code == 500
    assert response.text == "internal server error\n"
    assert "secret" not in response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert any("secret path" in str(record.exc_info) for record in caplog.records)


async def test_a_server_side_error_is_logged_in_one_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A 5xx TusError (storage, capacity) is the server's trouble: the operator sees one line, the client the
    reason; there is no traceback."""
    with caplog.at_level(logging.ERROR, logger="tusedge"):
        response = await _request(errors.StorageFailed("the disk said EIO"), "PATCH", b"abc")
    assert response.status_code == 500 and response.text == "ERR_STORAGE_FAILED: the disk said EIO\n"
    [record] = [r for r in caplog.records if r.name == "tusedge"]
    assert "500 ERR_STORAGE_FAILED: the disk said EIO" in record.getMessage()
    assert record.exc_info is None
