"""concatenation: naming partial uploads in a final upload, and the final's length."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from urllib.parse import unquote, urlsplit

from tusedge.errors import InvalidConcat, PartialUploadNotFound
from tusedge.protocol.upload import ConcatKind, UploadInfo


def part_ids(urls: Sequence[str], base_path: str, is_id: Callable[[str], bool]) -> list[str]:
    """concatenation: "The Client MUST [name] the partial uploads ... [as] a space-separated list of the
    partial uploads' URLs"; absolute and relative URLs are both accepted. A URL whose path is not one of
    ours (another base path, another server) is refused with a reason."""
    ids = []
    for url in urls:
        try:
            path = unquote(urlsplit(url).path)
        except ValueError:  # e.g. "http://[::1": urlsplit refuses a broken IPv6 host
            raise InvalidConcat(f"{url[:200]!r} is not a valid URL") from None
        upload_id = path[len(base_path) :] if path.startswith(base_path) else ""
        if not is_id(upload_id):
            raise InvalidConcat(f"{url[:200]!r} is not an upload URL of this server ({base_path}<id>)")
        ids.append(upload_id)
    return ids


def check_parts(ids: Sequence[str], parts: dict[str, UploadInfo]) -> None:
    """Every named upload must exist here and have been created with ``Upload-Concat: partial``."""
    for upload_id in ids:
        info = parts.get(upload_id)
        if info is None or info.status.gone:
            raise PartialUploadNotFound(f"partial upload {upload_id} does not exist")
        if info.concat is not ConcatKind.PARTIAL:
            raise InvalidConcat(f"upload {upload_id} was not created as a partial upload")


def final_length(parts: Iterable[UploadInfo]) -> int | None:
    """concatenation: the final's length is the sum of its parts' lengths, once all of them are known."""
    total = 0
    for part in parts:
        if part.length is None:
            return None
        total += part.length
    return total
