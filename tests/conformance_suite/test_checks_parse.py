"""Pure helpers of the conformance suite: header parsing, raw HTTP framing, rule selection, the registry.

(This folder is not called ``tests/conformance``: with ``tests/`` on ``sys.path`` that name would shadow the
``conformance`` package itself.)
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest

from conformance import parsing, rawhttp
from conformance.context import CheckSkipped
from conformance.runner import Status, rule_ids, run, selected

# --- IMF-fixdate (exp.header) ----------------------------------------------------------------------------


def test_imf_fixdate_parses_the_spec_example() -> None:
    assert parsing.parse_imf_fixdate("Wed, 25 Jun 2014 16:00:00 GMT") == datetime(2014, 6, 25, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "Thu, 25 Jun 2014 16:00:00 GMT",  # 25 June 2014 was a Wednesday
        "Wednesday, 25-Jun-14 16:00:00 GMT",  # obsolete RFC 850 form
        "Wed Jun 25 16:00:00 2014",  # obsolete asctime form
        "Wed, 25 Jun 2014 16:00:00 +0000",  # numeric zone
        "Wed, 25 Jun 2014 16:00:00 UTC",
        "Wed, 5 Jun 2014 16:00:00 GMT",  # day needs two digits
        "Wed, 25 Jun 2014 24:00:00 GMT",
        "wed, 25 jun 2014 16:00:00 GMT",  # names are case-sensitive
        "Wed, 25 Jun 2014 16:00:00 GMT ",
        "2014-06-25T16:00:00Z",
        "Sun, 30 Feb 2014 16:00:00 GMT",  # no such date
        "",
    ],
)
def test_imf_fixdate_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parsing.parse_imf_fixdate(value)


# --- numbers and lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("10", 10), ("007", 7), (None, None)])
def test_non_negative_int_accepts_digits(value: str | None, expected: int | None) -> None:
    assert parsing.parse_non_negative_int(value) == expected


@pytest.mark.parametrize("value", ["-1", "+1", "1_0", "1e3", "1.0", " 1", "0x10", "\u0661", ""])
def test_non_negative_int_rejects_what_int_would_take(value: str) -> None:
    with pytest.raises(ValueError):
        parsing.parse_non_negative_int(value)


def test_parse_list_trims_and_drops_empty_items() -> None:
    assert parsing.parse_list(" creation, ,termination ,") == ["creation", "termination"]
    assert parsing.parse_list(None) == []


def test_cache_directives_and_header_names_are_case_insensitive() -> None:
    assert parsing.cache_directives("No-Store, max-age=0") == {"no-store", "max-age"}
    assert parsing.header_names("Upload-Offset, LOCATION") == {"upload-offset", "location"}


# --- Upload-Metadata (creation.metadata) -----------------------------------------------------------------


def test_metadata_round_trips_including_empty_values() -> None:
    pairs = {"filename": "ü x.txt".encode(), "flag": None, "empty": b""}
    encoded = parsing.encode_metadata(pairs)
    assert encoded == "filename w7wgeC50eHQ=,flag,empty "
    assert parsing.decode_metadata(encoded) == {"filename": "ü x.txt".encode(), "flag": b"", "empty": b""}


def test_metadata_tolerates_spaces_around_pairs() -> None:
    assert parsing.decode_metadata("a YQ==, b Yg==") == {"a": b"a", "b": b"b"}


@pytest.mark.parametrize("value", ["a not*base64", "a YQ=", "a YQ==,a Yg==", "a YQ==,,b Yg==", "my key YQ==", ""])
def test_metadata_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parsing.decode_metadata(value)


# --- Upload-Concat, Content-Disposition, missing URLs ----------------------------------------------------


def test_concat_final_lists_urls_in_order() -> None:
    assert parsing.parse_concat_final("final;/files/a https://x.example/files/b") == [
        "/files/a",
        "https://x.example/files/b",
    ]


@pytest.mark.parametrize("value", ["partial", "final;", "final", "finale;/files/a"])
def test_concat_final_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parsing.parse_concat_final(value)


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ('attachment; filename="a \\"b\\".txt"', ['a "b".txt']),
        ("attachment; filename=plain.txt", ["plain.txt"]),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", ["résumé.pdf"]),
        ("inline; filename=\"x.txt\"; filename*=utf-8''y.txt", ["x.txt", "y.txt"]),
        ("attachment", []),
    ],
)
def test_disposition_filenames(value: str, names: list[str]) -> None:
    assert parsing.disposition_filenames(value) == names


def test_missing_variant_keeps_the_id_shape() -> None:
    url = "http://h:1/files/3dfa4600-9ff3-4395-94c5-6408f9a2e476?x=1"
    other = parsing.missing_variant(url, random.Random(7))
    assert other != url
    assert other.startswith("http://h:1/files/") and other.endswith("?x=1")
    new_id = other.split("/")[-1].split("?")[0]
    assert [len(part) for part in new_id.split("-")] == [8, 4, 4, 4, 12]
    assert set(new_id) <= set("0123456789abcdef-")


# --- raw HTTP framing (core.patch-partial-body, sum.trailer) ---------------------------------------------


def test_parse_response_head() -> None:
    response = rawhttp.parse_response_head(b"HTTP/1.1 460 Checksum Mismatch\r\nTus-Resumable: 1.0.0\r\n\r\nbody")
    assert response.status == 460
    assert response.headers == {"tus-resumable": "1.0.0"}


@pytest.mark.parametrize("data", [b"HTTP/1.1 204 No Content\r\n", b"garbage\r\n\r\n", b"HTTP/1.1 204\r\nbad\r\n\r\n"])
def test_parse_response_head_rejects(data: bytes) -> None:
    with pytest.raises(ValueError):
        rawhttp.parse_response_head(data)


def test_chunked_body_with_trailer() -> None:
    assert rawhttp.chunked(b"abc", {"Upload-Checksum": "sha1 x"}) == b"3\r\nabc\r\n0\r\nUpload-Checksum: sha1 x\r\n\r\n"
    assert rawhttp.chunked(b"", {}) == b"0\r\n\r\n"


def test_target_from_url() -> None:
    target = rawhttp.Target.from_url("http://user@127.0.0.1:8080/files/ab?k=v")
    assert (target.host, target.port, target.host_header, target.path) == (
        "127.0.0.1",
        8080,
        "127.0.0.1:8080",
        "/files/ab?k=v",
    )
    with pytest.raises(CheckSkipped):
        rawhttp.Target.from_url("https://example.com/files/ab")


# --- rule selection and the registry ---------------------------------------------------------------------


def test_only_selects_by_family_or_exact_rule() -> None:
    assert selected("concat.final", ["concat"])
    assert selected("concat.final", ["concat."])
    assert selected("core.numbers", ["core.numbers"])
    assert not selected("core.numbers", ["core.num"])
    assert not selected("creation.201", ["core"])
    assert selected("anything.at-all", [])


CHECKLIST = """
core.resumable-everywhere core.version-412 core.options core.head-offset core.head-missing core.patch-content-type
core.patch-offset-409 core.patch-204 core.patch-missing core.patch-partial-body core.patch-beyond-length
core.method-override core.numbers creation.201 creation.length-required creation.max-size-413 creation.metadata
creation.zero-length cwu.body defer.create defer.head defer.set-once exp.header exp.gone sum.advertise sum.ok sum.460
sum.unsupported-400 sum.trailer term.204 term.after concat.partial concat.final concat.final-head
concat.final-patch-403 concat.bad-parts concat.reuse concat.unfinished ours.get ours.cors ours.errors
""".split()


def test_one_check_per_checklist_rule_in_family_order() -> None:
    ids = rule_ids()
    assert sorted(ids) == sorted(CHECKLIST)
    families = [rule.split(".")[0] for rule in ids]
    assert families == sorted(
        families, key=["core", "creation", "cwu", "defer", "exp", "sum", "term", "concat", "ours"].index
    )


def test_runner_skips_what_the_server_does_not_advertise() -> None:
    """A server with no extensions: core checks that need an upload SKIP, extension rules SKIP, ours need --ours."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "OPTIONS":
            return httpx.Response(204, headers={"Tus-Version": "1.0.0"})
        return httpx.Response(404, headers={"Tus-Resumable": "1.0.0"})

    report = run("http://tus.invalid/files/", transport=httpx.MockTransport(handler))
    status = {result.rule: result for result in report.results}
    assert status["core.options"].status is Status.PASS
    assert status["core.head-missing"].status is Status.PASS
    assert status["core.patch-missing"].status is Status.PASS
    assert status["core.head-offset"].status is Status.SKIP
    assert "creation" in status["core.head-offset"].reason
    assert status["creation.201"].reason == "extension creation not advertised"
    assert status["ours.get"].status is Status.SKIP
    assert report.ok
    assert report.summary == f"3 passed, 0 failed, {len(CHECKLIST) - 3} skipped"


def test_runner_reports_a_server_that_breaks_a_rule() -> None:
    """OPTIONS without Tus-Version fails core.options and makes the whole report not ok."""
    report = run(
        "http://tus.invalid/files/",
        only=["core.options"],
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    [result] = report.results
    assert result.status is Status.FAIL
    assert "does not list 1.0.0" in result.reason
    assert not report.ok
