"""Pre-signed creation URLs (tusedge.signing): what verifies, and why the rest is refused."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tusedge.errors import SignatureExpired, SignatureInvalid, SignatureRequired
from tusedge.signing import Grant, sign_url, verify

KEY = b"k" * 32
NOW = 1_800_000_000


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_signed_url_verifies_with_its_grant() -> None:
    url = sign_url("https://up.example.org/files/", KEY, NOW + 60, max_size=1000)
    assert urlsplit(url).path == "/files/"
    assert verify(KEY, "/files/", query(url), NOW) == Grant(NOW + 60, 1000)
    assert verify(KEY, "/files/", query(sign_url("http://h/files/", KEY, NOW + 1)), NOW).max_size is None


@pytest.mark.parametrize(
    ("change", "value"), [("expires", str(NOW + 9999)), ("max_size", "10"), ("signature", "0" * 64)]
)
def test_any_change_to_the_signed_query_is_refused(change: str, value: str) -> None:
    q = query(sign_url("http://h/files/", KEY, NOW + 60, max_size=1000))
    q[change] = value
    with pytest.raises(SignatureInvalid):
        verify(KEY, "/files/", q, NOW)


def test_dropping_the_size_limit_is_refused() -> None:
    q = query(sign_url("http://h/files/", KEY, NOW + 60, max_size=1000))
    del q["max_size"]
    with pytest.raises(SignatureInvalid):
        verify(KEY, "/files/", q, NOW)


def test_another_path_or_key_is_refused() -> None:
    q = query(sign_url("http://h/files/", KEY, NOW + 60))
    with pytest.raises(SignatureInvalid):
        verify(KEY, "/other/", q, NOW)
    with pytest.raises(SignatureInvalid):
        verify(b"x" * 32, "/files/", q, NOW)


def test_an_expired_url_is_refused_with_how_long_ago() -> None:
    q = query(sign_url("http://h/files/", KEY, NOW - 30))
    with pytest.raises(SignatureExpired, match="30 s ago"):
        verify(KEY, "/files/", q, NOW)


def test_no_signature_is_its_own_error() -> None:
    with pytest.raises(SignatureRequired):
        verify(KEY, "/files/", {}, NOW)


@pytest.mark.parametrize("bad", [{"expires": "soon"}, {"max_size": "big"}, {"max_size": "-1"}])
def test_malformed_numbers_are_refused(bad: dict[str, str]) -> None:
    q = {**query(sign_url("http://h/files/", KEY, NOW + 60)), **bad}
    with pytest.raises(SignatureInvalid):
        verify(KEY, "/files/", q, NOW)
