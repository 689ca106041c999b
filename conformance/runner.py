"""The registry of checks and the runner.

A check is a function ``(Context) -> str`` registered with ``@check("rule.id", extension=...)``: it returns the
detail of its PASS line, or raises :class:`~conformance.context.CheckFailed` / ``CheckSkipped``. Checks run in
registration order, which follows SPEC-CHECKLIST.md. ``ours.*`` rules are this project's choices beyond the spec
and run only when asked for.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from conformance.context import CheckFailed, CheckSkipped, Context, ServerInfo

CheckFunction = Callable[[Context], str]


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    rule: str
    extension: str | None
    function: CheckFunction

    @property
    def ours(self) -> bool:
        return self.rule.startswith("ours.")

    @property
    def summary(self) -> str:
        """The first line of the check's docstring: the rule in brief."""
        return (self.function.__doc__ or "").strip().splitlines()[0] if self.function.__doc__ else ""


@dataclass(frozen=True)
class Result:
    rule: str
    status: Status
    reason: str
    extension: str | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class Report:
    url: str
    info: ServerInfo
    results: list[Result] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for result in self.results if result.status is status)

    @property
    def ok(self) -> bool:
        return self.count(Status.FAIL) == 0

    @property
    def summary(self) -> str:
        return f"{self.count(Status.PASS)} passed, {self.count(Status.FAIL)} failed, {self.count(Status.SKIP)} skipped"


class ServerUnreachable(Exception):
    """OPTIONS on the endpoint did not get an HTTP answer at all."""


_REGISTRY: dict[str, Check] = {}


def check(rule: str, extension: str | None = None) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function`` as the check of ``rule``; it is skipped unless OPTIONS advertises ``extension``."""

    def register(function: CheckFunction) -> CheckFunction:
        if rule in _REGISTRY:
            raise ValueError(f"two checks for rule {rule}")
        _REGISTRY[rule] = Check(rule, extension, function)
        return function

    return register


# Rule families in the order of SPEC-CHECKLIST.md; within a family, checks keep their registration order.
FAMILIES = ("core", "creation", "cwu", "defer", "exp", "sum", "term", "concat", "ours")


def checks() -> list[Check]:
    """Every registered check, in checklist order."""
    importlib.import_module("conformance.checks")
    registered = list(_REGISTRY.values())

    def key(item: Check) -> tuple[int, int]:
        family = item.rule.split(".", 1)[0]
        rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
        return rank, registered.index(item)

    return sorted(registered, key=key)


def rule_ids() -> list[str]:
    return [item.rule for item in checks()]


def selected(rule: str, only: Iterable[str]) -> bool:
    """``--only concat`` selects ``concat.*``; ``--only core.numbers`` selects that one rule."""
    prefixes = list(only)
    return not prefixes or any(rule == p or rule.startswith(p.rstrip(".") + ".") for p in prefixes)


def run(
    url: str,
    *,
    only: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    ours: bool = False,
    verify_tls: bool = True,
    expiry_wait_s: float = 15.0,
    on_start: Callable[[Report], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Report:
    """Check the tus server whose creation endpoint is ``url``. ``headers`` go with every request (e.g.
    ``Authorization``). ``on_start`` sees the report once OPTIONS has been asked, ``on_result`` each result as
    soon as it is known. ``transport`` replaces the network (tests)."""
    only = list(only)
    with httpx.Client(headers=dict(headers or {}), timeout=timeout_s, verify=verify_tls, transport=transport) as client:
        try:
            discovery = client.options(url)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"OPTIONS {url} failed: {exc!r}") from exc
        report = Report(url, ServerInfo.from_response(discovery))
        if on_start is not None:
            on_start(report)
        for item in checks():
            if not selected(item.rule, only):
                continue
            context = Context(
                client,
                url,
                report.info,
                ours=ours,
                extra_headers=headers,
                timeout_s=timeout_s,
                expiry_wait_s=expiry_wait_s,
            )
            result = run_one(item, context)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    return report


def run_one(item: Check, context: Context) -> Result:
    if item.ours and not context.ours:
        return Result(item.rule, Status.SKIP, "beyond the spec; run with --ours", item.extension)
    if item.extension is not None and item.extension not in context.info.extensions:
        return Result(item.rule, Status.SKIP, f"extension {item.extension} not advertised", item.extension)
    started = time.monotonic()
    try:
        status, reason = Status.PASS, item.function(context)
    except CheckFailed as exc:
        status, reason = Status.FAIL, str(exc)
    except CheckSkipped as exc:
        status, reason = Status.SKIP, str(exc)
    except httpx.HTTPError as exc:
        status, reason = Status.FAIL, f"request failed: {exc!r}"
    except OSError as exc:  # the raw-socket checks
        status, reason = Status.FAIL, f"connection failed: {exc!r}"
    except Exception as exc:  # a bug in the check itself: report it, keep going with the other rules
        status, reason = Status.FAIL, f"error in the conformance check itself: {exc!r}"
    finally:
        try:
            context.cleanup()
        except httpx.HTTPError:
            pass
    return Result(item.rule, status, reason, item.extension, round(time.monotonic() - started, 3))
