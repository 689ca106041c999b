"""Range requests on GET of a finished upload (RFC 9110, 14): one satisfiable range is 206 with exactly its
bytes and Content-Range; an unsatisfiable one is 416 with ``Content-Range: bytes */N``; a header not served as
asked (several ranges, another unit, malformed) is ignored: 200 with the whole body, never wrong bytes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import httpx
import pytest
from server_process import ServerFactory

TUS = {"Tus-Resumable": "1.0.0"}
SIZE = 1000
DATA = random.Random(5).randbytes(SIZE)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server and one finished upload for the whole module (GETs change nothing)."""
    factory = ServerFactory(tmp_path_factory.mktemp("ranges"))
    try:
        yield finished_upload(factory().url)
    finally:
        factory.close()


def finished_upload(creation_url: str) -> str:
    url = httpx.post(creation_url, headers={**TUS, "Upload-Length": str(SIZE)}).headers["Location"]
    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    assert httpx.patch(url, content=DATA, headers=headers).status_code == 204
    return url


@pytest.mark.parametrize("value", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000", "bytes=-0"])
def test_an_unsatisfiable_range_is_416_with_bytes_star_slash_length(finished: str, value: str) -> None:
    response = httpx.get(finished, headers={"Range": value})
    assert response.status_code == 416, response.text
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert DATA[:20] not in response.content


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [("bytes=0-0", 0, 0), ("bytes=10-19", 10, 19), ("bytes=990-", 990, 999), ("bytes=995-5000", 995, 999),
     ("bytes=-5", 995, 999), ("bytes=-5000", 0, 999), ("BYTES = 7 - 8", 7, 8)],
)  # fmt: skip
def test_one_satisfiable_range_is_206_with_exactly_its_bytes(finished: str, value: str, start: int, end: int) -> None:
    response = httpx.get(finished, headers={"Range": value})
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.content == DATA[start : end + 1]


@pytest.mark.parametrize(
    "value", ["bytes=0-1,5-6", "bytes=0-1, 0-1", "bytes=1-2,3-4,900-", "items=0-5", "bytes=abc", "bytes=50-40",
              "bytes=-", "bytes 0-5", "bytes=0x1-2", "bytes=99999999999999999999-"],
)  # fmt: skip
def test_a_range_not_served_as_asked_gets_the_whole_body(finished: str, value: str) -> None:
    response = httpx.get(finished, headers={"Range": value})
    assert response.status_code == 200, response.text
    assert "Content-Range" not in response.headers
    assert response.content == DATA


def test_seeded_random_ranges_match_a_model(finished: str) -> None:
    """200 random single ranges (seeded): whatever the answer, its bytes are the model's."""
    rng = random.Random(int(os.environ.get("RANGE_SEED", "11")))
    with httpx.Client() as client:
        for _ in range(200):
            a, b = rng.randint(0, 1100), rng.randint(0, 1100)
            value = rng.choice([f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"])
            response = client.get(finished, headers={"Range": value})
            if response.status_code == 206:
                first, _, last = (
                    response.headers["Content-Range"].removeprefix("bytes ").partition("/")[0].partition("-")
                )
                assert response.content == DATA[int(first) : int(last) + 1], value
            elif response.status_code == 416:
                assert response.headers["Content-Range"] == f"bytes */{SIZE}", value
            else:
                assert response.status_code == 200 and response.content == DATA, (value, response.status_code)
