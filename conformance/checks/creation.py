"""Extensions creation and creation-with-upload (https://tus.io/protocols/resumable-upload#creation)."""

from __future__ import annotations

from conformance.context import OCTET, Context, describe
from conformance.parsing import decode_metadata, encode_metadata
from conformance.runner import check


@check("creation.201", extension="creation")
def created_201(ctx: Context) -> str:
    """POST with `Upload-Length` answers 201 with `Location` (absolute or relative) of the new upload.

    "The Server MUST acknowledge a successful upload creation with the 201 Created status. The Server MUST set
    the Location header to the URL of the created resource. This URL MAY be absolute or relative."
    """
    response = ctx.post({"Upload-Length": "7"})
    location = response.headers.get("Location")
    if response.status_code != 201:
        raise ctx.fail(f"POST with Upload-Length 7 answered {describe(response)}, expected 201")
    if not location:
        raise ctx.fail("201 without Location")
    url = ctx.resolve(location)
    head = ctx.head(url)
    if head.status_code not in (200, 204):
        raise ctx.fail(f"HEAD of the new upload {url} answered {describe(head)}")
    if head.headers.get("Upload-Length") != "7" or head.headers.get("Upload-Offset") != "0":
        raise ctx.fail(
            f"HEAD of the new upload: Upload-Length {head.headers.get('Upload-Length')!r}, Upload-Offset "
            f"{head.headers.get('Upload-Offset')!r}; expected 7 and 0"
        )
    kind = "absolute" if location.startswith(("http://", "https://")) else "relative"
    return f"201 with {kind} Location {location}; HEAD shows length 7, offset 0"


@check("creation.length-required", extension="creation")
def length_required(ctx: Context) -> str:
    """A POST with neither `Upload-Length` nor `Upload-Defer-Length: 1` is 400.

    "The request MUST include one of the following headers: a) Upload-Length [...] b) Upload-Defer-Length: 1"
    """
    response = ctx.post({})
    if response.status_code != 400:
        raise ctx.fail(f"POST without Upload-Length answered {describe(response)}, expected 400")
    if response.headers.get("Location"):
        raise ctx.fail("the rejected POST created an upload anyway (Location present)")
    return "400, no upload created"


@check("creation.max-size-413", extension="creation")
def max_size_413(ctx: Context) -> str:
    """`Upload-Length` above `Tus-Max-Size` gets 413.

    "If the length of the upload exceeds the maximum, which MAY be specified using the Tus-Max-Size header, the
    Server MUST respond with the 413 Request Entity Too Large status."
    """
    if ctx.info.max_size is None:
        raise ctx.skip("the server advertises no Tus-Max-Size")
    too_big = ctx.info.max_size + 1
    response = ctx.post({"Upload-Length": str(too_big)})
    if response.status_code != 413:
        raise ctx.fail(f"POST with Upload-Length {too_big} (Tus-Max-Size + 1) answered {describe(response)}")
    if response.headers.get("Location"):
        raise ctx.fail("the rejected POST created an upload anyway (Location present)")
    return f"413 for Upload-Length {too_big}"


METADATA = {"filename": "résumé 2024.pdf".encode(), "flag": None, "type": b"application/pdf", "zero": b"\x00\xff"}
MALFORMED_METADATA = {
    "a value that is not base64": "filename not*base64!",
    "a value with broken padding": "filename YQ=",
    "a duplicate key": "a YQ==,a Yg==",
    "an empty key": "a YQ==,,b Yg==",
    "a key with a space": "my key YQ==",
}


@check("creation.metadata", extension="creation")
def metadata(ctx: Context) -> str:
    """`Upload-Metadata` pairs `key base64value` round-trip through HEAD; malformed metadata is 400.

    "The key MUST NOT contain spaces and commas and MUST NOT be empty. [...] the value MUST be Base64 encoded. All
    keys MUST be unique. The value MAY be empty." "If an upload contains additional metadata, responses to HEAD
    requests MUST include the Upload-Metadata header and its value as specified by the Client during the creation."
    """
    problems: list[str] = []
    for label, value in MALFORMED_METADATA.items():
        response = ctx.post({"Upload-Length": "3", "Upload-Metadata": value})
        if response.status_code != 400:
            problems.append(f"{label} ({value!r}) -> {describe(response)}")
    if problems:
        raise ctx.fail("malformed Upload-Metadata not rejected with 400: " + "; ".join(problems))
    sent = encode_metadata(METADATA)
    url = ctx.create(3, headers={"Upload-Metadata": sent})
    returned = ctx.head(url).headers.get("Upload-Metadata")
    if returned is None:
        raise ctx.fail(f"created with Upload-Metadata {sent!r}, but HEAD has no Upload-Metadata")
    try:
        decoded = decode_metadata(returned)
    except ValueError as exc:
        raise ctx.fail(f"HEAD returned malformed Upload-Metadata {returned!r}: {exc}") from None
    expected = {key: value or b"" for key, value in METADATA.items()}
    if decoded != expected:
        raise ctx.fail(f"HEAD returned Upload-Metadata {returned!r}, which decodes to {decoded}, expected {expected}")
    return f"400 for {len(MALFORMED_METADATA)} malformed values; HEAD round-trips {len(METADATA)} pairs"


@check("creation.zero-length", extension="creation")
def zero_length(ctx: Context) -> str:
    """An upload with `Upload-Length: 0` is complete at once.

    "The Upload-Length header MAY be set to 0, indicating that the Client wants to upload an empty file. Such an
    upload is immediately complete after its creation without transferring data using PATCH requests."
    """
    url = ctx.create(0)
    head = ctx.head(url)
    if head.headers.get("Upload-Offset") != "0" or head.headers.get("Upload-Length") != "0":
        raise ctx.fail(
            f"HEAD of an empty upload: {describe(head)}, Upload-Offset {head.headers.get('Upload-Offset')!r}, "
            f"Upload-Length {head.headers.get('Upload-Length')!r}; expected 0 and 0"
        )
    return "HEAD shows Upload-Offset 0 = Upload-Length 0"


@check("cwu.body", extension="creation-with-upload")
def creation_with_upload(ctx: Context) -> str:
    """A POST may carry the first bytes; the 201 then includes `Upload-Offset`.

    "The Client MUST include the Content-Type: application/offset+octet-stream header. The Server SHOULD accept
    as many bytes as possible and MUST include the Upload-Offset header in the response and MUST set its value to
    the offset of the upload after applying the accepted bytes."
    """
    response = ctx.post({"Upload-Length": "10", "Content-Type": OCTET}, b"0123")
    if response.status_code != 201 or not response.headers.get("Location"):
        raise ctx.fail(f"POST with a 4-byte body answered {describe(response)}, expected 201 with Location")
    offset = response.headers.get("Upload-Offset")
    if offset != "4":
        raise ctx.fail(f"201 with Upload-Offset {offset!r}, expected 4 (all bytes accepted)")
    url = ctx.resolve(response.headers["Location"])
    ctx.expect_offset(url, 4, "a POST carrying 4 bytes")
    ctx.write(url, 4, b"456789")
    return "201 with Upload-Offset 4; HEAD agrees; the upload continued with PATCH"
