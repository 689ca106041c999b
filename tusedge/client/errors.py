"""The client's typed failures. The CLI maps each to one exit code (tusedge/client/cli.py)."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every failure the client reports."""


class TusClientError(ClientError):
    """The server answered with a status the request did not expect; ``status`` and the server's
    one-line ``reason`` say why."""

    def __init__(self, method: str, url: str, status: int, reason: str, *, retry_after: float | None = None) -> None:
        self.method = method
        self.status = status
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After), if it did."""
        self.reason = reason.strip().splitlines()[0][:300] if reason.strip() else ""
        super().__init__(f"{method} {url}: {status} {self.reason}".rstrip())


class GaveUp(ClientError):
    """Retries were spent (count or time budget) on failures that could have been transient; the last
    one is the ``__cause__``. Running the same upload again resumes it."""


class VerificationFailed(ClientError):
    """The server computed a different digest of the whole upload than the one this client declared."""


class UploadFailed(ClientError):
    """The server failed the upload for a reason other than its digest (``Upload-Checksum-Status: failed``: a
    partial upload of a final upload was gone before it was joined); it will never be complete."""


class SourceChanged(ClientError):
    """The file changed (shrank) while it was being uploaded."""


class UploadInProgress(ClientError):
    """Another process is uploading the same file to the same endpoint right now."""
