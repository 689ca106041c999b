"""Typed errors of tusedge.

Every failure a client can cause is a subclass of :class:`TusError` that names the condition and carries
its HTTP status and a stable machine-readable code as class attributes. Nothing else turns errors into
responses: ``tusedge.server.responses`` maps them, in one place.
"""

from __future__ import annotations

from typing import ClassVar, cast


class TusError(Exception):
    """Base of all errors a tus request can end in. The message is one line, shown to the client. Each
    condition is its own class, and its status is the class's (never given per instance: where someone
    else picks the status, as the pre-create hook does, each status it may pick has its class)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "ERR_BAD_REQUEST"
    default_message: ClassVar[str] = "bad request"
    close_connection: ClassVar[bool] = False
    """Answered with ``Connection: close`` over HTTP/1.x: what follows on the connection cannot be trusted
    (its framing is in doubt) or must not be read (a client over a limit)."""

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = (message or self.default_message).replace("\n", " ")
        self.headers = headers or {}
        super().__init__(self.message)


# 400 -------------------------------------------------------------------------------------------------
class InvalidHeader(TusError):
    code = "ERR_INVALID_HEADER"
    default_message = "invalid header"


class InvalidMetadata(InvalidHeader):
    code = "ERR_INVALID_METADATA"
    default_message = "invalid Upload-Metadata"


class LengthRequired(TusError):
    code = "ERR_LENGTH_REQUIRED"
    default_message = "Upload-Length or Upload-Defer-Length: 1 is required"


class LengthAlreadySet(TusError):
    code = "ERR_LENGTH_ALREADY_SET"
    default_message = "Upload-Length is already set and cannot change"


class ChecksumAlgorithmUnsupported(TusError):
    code = "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"
    default_message = "unsupported checksum algorithm"


class InvalidConcat(TusError):
    code = "ERR_INVALID_CONCAT"
    default_message = "invalid Upload-Concat"


class PartialUploadNotFound(InvalidConcat):
    """A final upload names a partial upload that does not exist (or is gone): 404 rather than 400."""

    status = 404
    code = "ERR_PARTIAL_UPLOAD_NOT_FOUND"
    default_message = "a partial upload named in Upload-Concat does not exist"


class IncompleteRequest(TusError):
    """The request ended before its body did (or the HTTP layer found its framing broken): nothing is done."""

    code = "ERR_INCOMPLETE_REQUEST"
    default_message = "the request did not arrive completely; nothing was changed"


class ConflictingFraming(TusError):
    """RFC 9112 6.3: a request with both Transfer-Encoding and Content-Length "ought to be handled as an
    error"; a proxy in front that framed it by Content-Length would disagree with us on where the next
    request starts (request smuggling), so the connection is closed too."""

    code = "ERR_CONFLICTING_FRAMING"
    default_message = "the request has both Content-Length and Transfer-Encoding; send one (RFC 9112 6.3)"
    close_connection = True


class BodyUnknownThroughFront(TusError):
    """A body-carrying tus request that reached a front (with --trust-proxy) over HTTP/3 and was passed on
    with an empty body. Caddy 2.6 passes an HTTP/3 request body sent without Content-Length as empty;
    what arrives here cannot tell that from a client that really sent nothing, so neither is taken."""

    status = 411
    code = "ERR_BODY_UNKNOWN_THROUGH_FRONT"
    default_message = (
        "this request reached the front over HTTP/3 and came on with an empty body: the front may have"
        " dropped a body sent without Content-Length (Caddy 2.6 does), so nothing is written; send"
        " Content-Length, or use HTTP/2"
    )


class UnsupportedTransferCoding(TusError):
    """A request framed by a transfer coding other than ``chunked`` (h11 takes no other): RFC 9112 6.1, a
    server "ought to respond with 501 (Not Implemented)"; the connection is closed (its framing is unknown)."""

    status = 501
    code = "ERR_UNSUPPORTED_TRANSFER_CODING"
    default_message = "the only Transfer-Encoding this server takes is chunked"
    close_connection = True


class MalformedRequest(TusError):
    """The HTTP layer could not parse the request (h11 refused it); the connection is closed."""

    code = "ERR_MALFORMED_REQUEST"
    default_message = "the request is not valid HTTP/1.1"
    close_connection = True


class ContentDecodingFailed(TusError):
    code = "ERR_CONTENT_DECODING"
    default_message = "the request body could not be decoded"


class UploadInterrupted(TusError):
    """The request was stopped because another request took over the upload's lock."""

    status = 423
    code = "ERR_UPLOAD_INTERRUPTED"
    default_message = "upload was interrupted by another request for the same upload"


# 403, 404, 405, 408, 409, 410, 412, 413, 415, 423, 431, 460, 507 ----------------------------------------------
class ModifyFinalUpload(TusError):
    status = 403
    code = "ERR_MODIFY_FINAL"
    default_message = "a final upload cannot be modified"


class UploadNotFound(TusError):
    status = 404
    code = "ERR_UPLOAD_NOT_FOUND"
    default_message = "upload not found"


class UploadGone(TusError):
    status = 410
    code = "ERR_UPLOAD_GONE"
    default_message = "upload is gone (expired or terminated)"


class OffsetMismatch(TusError):
    status = 409
    code = "ERR_MISMATCHED_OFFSET"
    default_message = "Upload-Offset does not match the upload's current offset"


class UploadNotReady(TusError):
    status = 409
    code = "ERR_UPLOAD_NOT_READY"
    default_message = "upload is not finished"


class UnsupportedVersion(TusError):
    status = 412
    code = "ERR_UNSUPPORTED_VERSION"
    default_message = "unsupported version: this server speaks tus 1.0.0"


class MaxSizeExceeded(TusError):
    status = 413
    code = "ERR_MAX_SIZE_EXCEEDED"
    default_message = "upload length exceeds the server's maximum size"


class ExceedsUploadLength(TusError):
    status = 413
    code = "ERR_EXCEEDS_UPLOAD_LENGTH"
    default_message = "request body would exceed the declared Upload-Length"


class UnexpectedBody(TusError):
    status = 413
    code = "ERR_UNEXPECTED_BODY"
    default_message = "this request takes no body"


class RequestHeadTooLarge(TusError):
    """The request line and headers together exceed the one limit (``MAX_REQUEST_HEAD_BYTES``), however
    they arrived over the connection."""

    status = 431
    code = "ERR_HEADERS_TOO_LARGE"
    default_message = "the request's headers are too large"
    close_connection = True


class RequestTimeout(TusError):
    """The request's headers, or its body at the minimum rate, did not arrive in time."""

    status = 408
    code = "ERR_REQUEST_TIMEOUT"
    default_message = "the request did not arrive in time"
    close_connection = True


class UnsupportedContentEncoding(TusError):
    """RFC 7694: a 415 for an unsupported Content-Encoding names the ones taken in Accept-Encoding."""

    status = 415
    code = "ERR_UNSUPPORTED_CONTENT_ENCODING"
    default_message = "unsupported Content-Encoding"


class UnsupportedContentType(TusError):
    status = 415
    code = "ERR_INVALID_CONTENT_TYPE"
    default_message = "Content-Type must be application/offset+octet-stream"


class UploadLocked(TusError):
    status = 423
    code = "ERR_UPLOAD_LOCKED"
    default_message = "another request is writing to this upload; retry later"


class SignatureRequired(TusError):
    status = 401
    code = "ERR_SIGNATURE_REQUIRED"
    default_message = "this server accepts new uploads only at signed URLs"


class SignatureInvalid(TusError):
    status = 403
    code = "ERR_SIGNATURE_INVALID"
    default_message = "the URL's signature is not valid"


class SignatureExpired(TusError):
    status = 403
    code = "ERR_SIGNATURE_EXPIRED"
    default_message = "the signed URL has expired"


class HookRefused(TusError):
    """The pre-create hook said no with 403, or with an answer that is no 4xx. The hook may pick any 4xx:
    :func:`hook_refusal` gives the class of each (a subclass of this one, with the same code)."""

    status = 403
    code = "ERR_REFUSED_BY_HOOK"
    default_message = "the upload was refused"


def _hook_refusal_class(status: int) -> type[HookRefused]:
    doc = f"The pre-create hook said no with {status}."
    attributes = {"status": status, "__module__": __name__, "__qualname__": f"HookRefused{status}", "__doc__": doc}
    return cast(type[HookRefused], type(f"HookRefused{status}", (HookRefused,), attributes))


_HOOK_REFUSALS: dict[int, type[HookRefused]] = {
    status: HookRefused if status == HookRefused.status else _hook_refusal_class(status) for status in range(400, 500)
}


def hook_refusal(status: int) -> type[HookRefused]:
    """The error of a pre-create hook's refusal answered with ``status``: its own 4xx, else 403."""
    return _HOOK_REFUSALS.get(status, HookRefused)


class HookUnavailable(TusError):
    status = 503
    code = "ERR_HOOK_UNAVAILABLE"
    default_message = "the server cannot check this upload right now; retry shortly"


class TooManyRequests(TusError):
    status = 429
    code = "ERR_TOO_MANY_REQUESTS"
    default_message = "too many requests from this client; retry later"


class TooManyConnections(TooManyRequests):
    """A client address has more connections open than --client-max-connections: this one is closed."""

    code = "ERR_TOO_MANY_CONNECTIONS"
    default_message = "this client address has too many connections open"
    close_connection = True


class TooManyUploads(TooManyRequests):
    """A client address has --client-max-uploads request bodies in progress already."""

    code = "ERR_TOO_MANY_UPLOADS"
    default_message = "this client address has too many uploads in progress; retry when one has finished"


class DescriptorsRunningOut(TusError):
    """Fewer file descriptors are free than the reserve: new connections are answered and closed."""

    status = 503
    code = "ERR_OUT_OF_DESCRIPTORS"
    default_message = "the server is running out of file descriptors; retry shortly"
    close_connection = True


class ServerBusy(TusError):
    """The node is at a capacity limit (e.g. every lock connection to PostgreSQL is in use)."""

    status = 503
    code = "ERR_SERVER_BUSY"
    default_message = "the server is busy; retry shortly"


class ShuttingDown(TusError):
    """The node is draining before it stops (SIGTERM): no new uploads or PATCHes; HEAD still answers."""

    status = 503
    code = "ERR_SHUTTING_DOWN"
    default_message = "the server is shutting down; retry after Retry-After seconds (HEAD gives the offset)"


class ChecksumMismatch(TusError):
    status = 460
    code = "ERR_CHECKSUM_MISMATCH"
    default_message = "checksum mismatch"


class UploadFailed(TusError):
    status = 422
    code = "ERR_UPLOAD_FAILED"
    default_message = "upload failed verification"


class InsufficientStorage(TusError):
    status = 507
    code = "ERR_INSUFFICIENT_STORAGE"
    default_message = "not enough storage on the server"


# Storage failures: the store translates each OSError at its edge (tusedge/oserrors.py) --------
class FileTooLarge(TusError):
    """The file system cannot hold a file this large (EFBIG): the client's length is the cause."""

    status = 413
    code = "ERR_FILE_TOO_LARGE"
    default_message = "the server's file system cannot hold a file this large"


class StorageUnavailable(TusError):
    """The storage cannot take writes right now (read-only, out of descriptors or memory): retry later."""

    status = 503
    code = "ERR_STORAGE_UNAVAILABLE"
    default_message = "the server's storage is unavailable; retry later"


class StorageFailed(TusError):
    """The storage failed (an I/O error, a permission the server lacks): the server's fault, logged."""

    status = 500
    code = "ERR_STORAGE_FAILED"
    default_message = "the server could not read or write the upload's data"
