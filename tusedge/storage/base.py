"""The store contract, after tusd's ``DataStore`` and its optional interfaces (``Terminater``, ``Concater``,
``LengthDeferrer``, ``ContentServerDataStore``): what the service needs of any place upload bytes live,
and the capabilities a store declares, which decide the extensions the server advertises (Tus-Extension)
and the requests it takes. The file store (filestore.py) implements all of it; an object store would
declare what it can, and the protocol layer and the routes would not change.

The offset is never the store's: it lives in the state database and is committed after the bytes below it
are durable (docs/durability.md). A store only keeps bytes and says when they are safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tusedge.checksum import Hasher
from tusedge.storage.fileops import Joined


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store can do beyond the core (create, write at an offset, make durable, remove, verify)."""

    termination: bool  # DELETE (tusd: Terminater); without it the route takes no DELETE
    concatenation: bool  # final uploads joined from partial ones (tusd: Concater): the store is a Concater
    defer_length: bool  # bytes taken before the upload's length is known (tusd: LengthDeferrer)
    content: bool  # GET of a finished upload (tusd: ContentServerDataStore): the store is a ContentServer


class Writer(Protocol):
    """An upload open for writing: batches at an offset, made durable by ``sync`` (or ``write_last``)."""

    trimmed: bool  # write_last cut the upload at its length

    async def write(self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None = None) -> int: ...

    async def write_last(
        self, buffers: Sequence[bytes], offset: int, hasher: Hasher | None = None, trim_at: int | None = None
    ) -> int:
        """Write the body's last batch, make everything written durable and close."""
        ...

    async def sync(self) -> None: ...

    async def close(self) -> None: ...


class DataStore(Protocol):
    """The core every store has. Failures are TusErrors (the store translates its own, e.g. tusedge.oserrors)."""

    capabilities: Capabilities

    def setup(self) -> None: ...

    async def create(self, upload_id: str, length: int | None) -> None:
        """Make room for a new upload (``length``: reserve it where the store can)."""
        ...

    async def ensure_space(self, needed: int) -> None:
        """Refuse early (507) when the store cannot take ``needed`` more bytes."""
        ...

    async def open_writer(self, upload_id: str) -> Writer: ...

    async def truncate(self, upload_id: str, length: int) -> None:
        """Drop what lies past ``length`` (bytes past the committed offset of a complete upload)."""
        ...

    async def remove(self, upload_id: str) -> None:
        """Forget an upload's bytes (a creation refused, a tombstone's file); idempotent."""
        ...

    async def digest(self, upload_id: str, algorithm: Callable[[], Any], length: int) -> bytes:
        """The digest of the first ``length`` bytes (whole-file verification, docs/checksums.md)."""
        ...


@runtime_checkable
class Concater(Protocol):
    """concatenation: a final upload's bytes are its parts' bytes, in order."""

    async def merge(self, final_id: str, parts: Sequence[tuple[str, int]]) -> Joined:
        """Write the parts (id, length) one after another into the final, durably; restartable."""
        ...

    async def join_part(self, final_id: str, part_id: str, offset: int, length: int, start: int = 0) -> Joined | None:
        """Join a part's first ``length`` bytes (those from ``start`` on) in at its place ahead of the merge
        (merging while parts finish: a finished part, or the committed prefix of one still uploading)."""
        ...

    async def joined(self, final_id: str) -> frozenset[tuple[str, int, int]]:
        """The parts (id, offset, length) already joined into the final ahead of its merge: a part's first
        ``length`` bytes are at ``offset`` (a part may have several records; the longest counts)."""
        ...

    async def forget_joined(self, final_id: str) -> None:
        """Drop the record of the parts joined ahead of the merge (the merge then joins them again)."""
        ...

    async def digest_merged(
        self, final_id: str, parts: Sequence[tuple[str, int]], algorithm: Callable[[], Any]
    ) -> bytes | None:
        """The digest of a merged final computed where its bytes are cheapest to read (its parts), or None
        when it cannot be (then ``digest`` of the final)."""
        ...


@runtime_checkable
class ContentServer(Protocol):
    """ours.get: a finished upload served as it is stored."""

    def path(self, upload_id: str) -> Path: ...


def as_concater(store: DataStore) -> Concater:
    """The store as a Concater; only called where concatenation was offered (its capability)."""
    if not store.capabilities.concatenation or not isinstance(store, Concater):
        raise TypeError(f"{type(store).__name__} does not join uploads (capabilities: concatenation off)")
    return store


def as_content_server(store: DataStore) -> ContentServer:
    """The store as a ContentServer; only called where GET was routed (its capability)."""
    if not store.capabilities.content or not isinstance(store, ContentServer):
        raise TypeError(f"{type(store).__name__} does not serve content (capabilities: content off)")
    return store
