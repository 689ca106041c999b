"""The tusedge client: resumable, parallel tus uploads of huge files (docs/client.md).

``upload`` (async) and ``upload_sync`` take a path or a file object and the server's creation URL;
``UploadOptions`` holds every choice; failures are the ``ClientError`` tree of ``tusedge.client.errors``.
"""

from __future__ import annotations

from tusedge.client.errors import (
    ClientError,
    GaveUp,
    SourceChanged,
    TusClientError,
    UploadFailed,
    UploadInProgress,
    VerificationFailed,
)
from tusedge.client.pipe import upload_stream, upload_stream_sync
from tusedge.client.progress import Progress
from tusedge.client.retry import RetryPolicy
from tusedge.client.source import FileSource, Source, StreamSource
from tusedge.client.uploader import UploadOptions, UploadResult, upload, upload_sync

__all__ = [
    "ClientError",
    "FileSource",
    "GaveUp",
    "Progress",
    "RetryPolicy",
    "Source",
    "SourceChanged",
    "StreamSource",
    "TusClientError",
    "UploadFailed",
    "UploadInProgress",
    "UploadOptions",
    "UploadResult",
    "VerificationFailed",
    "upload",
    "upload_stream",
    "upload_stream_sync",
    "upload_sync",
]
