"""Hooks: tusedge tells an application about uploads by POSTing JSON events to ``--hook-url``.

``pre-create`` is asked before an upload is created and decides: a 2xx answer lets it be created; any
other answer refuses it with that status (a 4xx; anything else becomes 403) and the first line of the
answer's body as the reason — the place for authorisation, quotas, naming rules. If the hook cannot be
reached the upload is refused with 503: a hook that guards uploads must not be skipped when it is down.

``post-create``, ``post-finish`` (the upload is complete: merged and verified), ``post-terminate`` and
``post-expire`` are notifications: written to the outbox in the state database right after the change
they report, and delivered from there in the background until the hook answers 2xx — retried with
growing delays for up to a day (each failed attempt logged as a warning), across restarts, by whichever
process or node gets to them first (at least once; a duplicate is possible if a deliverer dies between
sending and recording it).

An event: ``{"type": ..., "upload": {"id", "path", "size", "offset", "metadata", "concat", "parts"},
"request": {"method", "path", "remote_addr", "headers"}}`` — ``request`` only for events a request
caused; metadata values decoded as UTF-8.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NotRequired, TypedDict

import httpx

from tusedge.config import Settings
from tusedge.errors import HookUnavailable, hook_refusal
from tusedge.events import HookEvent
from tusedge.protocol.metadata import parse_metadata
from tusedge.protocol.requests import CreateUpload
from tusedge.protocol.upload import UploadInfo
from tusedge.state.outbox import EventOutbox, PendingEvent

log = logging.getLogger("tusedge")

RETRY_DELAYS_S = (0.5, 2.0, 8.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # then every hour
GIVE_UP_AFTER = timedelta(days=1)
POLL_S = 1.0  # also picks up events written by other processes
# Request headers a hook may need to decide (who is asking); never cookies.
FORWARDED_HEADERS = ("authorization", "user-agent", "x-forwarded-for", "x-real-ip", "origin", "referer")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _metadata(header: str | None) -> dict[str, str]:
    return {k: v.decode("utf-8", errors="replace") for k, v in parse_metadata(header).items()}


class UploadFields(TypedDict):
    """An event's ``upload``: ``id`` and ``path`` are None in pre-create (no upload exists yet)."""

    id: str | None
    path: str | None
    size: int | None
    offset: int
    metadata: dict[str, str]
    concat: str | None
    parts: list[str]


class RequestFields(TypedDict):
    """An event's ``request``: who asked, with the headers in FORWARDED_HEADERS that it sent."""

    method: str
    path: str
    remote_addr: str | None
    headers: dict[str, str]


class HookPayload(TypedDict):
    """The JSON body of a hook event: its ``type`` (a HookEvent), the upload, and, for the events a request
    asked for (pre-create, post-create), the request."""

    type: str
    upload: UploadFields
    request: NotRequired[RequestFields]


def upload_fields(info: UploadInfo, base_path: str) -> UploadFields:
    return {
        "id": info.id,
        "path": base_path + info.id,
        "size": info.length,
        "offset": info.offset,
        "metadata": _metadata(info.metadata),
        "concat": info.concat.value if info.concat is not None else None,
        "parts": list(info.parts),
    }


def proposed_fields(request: CreateUpload) -> UploadFields:
    """The upload a creation request asks for (no id yet), for pre-create."""
    concat = None if request.concat is None else ("partial" if request.concat.partial else "final")
    return {
        "id": None,
        "path": None,
        "size": request.length.length,
        "offset": 0,
        "metadata": _metadata(request.metadata),
        "concat": concat,
        "parts": list(request.concat.parts) if request.concat is not None else [],
    }


def request_fields(method: str, path: str, remote_addr: str | None, headers: Mapping[str, str]) -> RequestFields:
    chosen = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    return {"method": method, "path": path, "remote_addr": remote_addr, "headers": chosen}


class Hooks:
    def __init__(
        self, settings: Settings, outbox: EventOutbox | None = None, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.url = settings.hook_url
        self.events = frozenset(HookEvent(name) for name in settings.hook_events) if self.url else frozenset()
        self.timeout_s = settings.hook_timeout_s
        self.outbox = outbox
        self.clock = clock
        if self.outbox is None and self.delivers:
            raise ValueError("post-* hooks need an outbox")
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()

    def wants(self, event: HookEvent) -> bool:
        return event in self.events

    @property
    def delivers(self) -> bool:
        return any(not event.decides for event in self.events)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def _post(self, event: HookPayload | str) -> httpx.Response:
        """POST one event: a payload, or one as the outbox keeps it (its JSON text)."""
        if isinstance(event, str):
            kind = json.loads(event)["type"]
            return await self._http().post(
                self.url, content=event, headers={"Hook-Name": kind, "Content-Type": "application/json"}
            )
        return await self._http().post(self.url, json=event, headers={"Hook-Name": event["type"]})

    async def pre_create(self, upload: UploadFields, request: RequestFields | None) -> None:
        """Ask the hook; raise HookRefused (of the hook's 4xx, tusedge.errors.hook_refusal) with its reason,
        or HookUnavailable."""
        if not self.wants(HookEvent.PRE_CREATE):
            return
        event: HookPayload = {"type": HookEvent.PRE_CREATE.value, "upload": upload}
        if request is not None:
            event["request"] = request
        try:
            answer = await self._post(event)
        except httpx.HTTPError as exc:
            log.error("pre-create hook unreachable: %s", exc)
            raise HookUnavailable(headers={"Retry-After": "5"}) from None
        if answer.is_success:
            return
        reason = answer.text.strip().splitlines()[0][:300] if answer.text.strip() else None
        raise hook_refusal(answer.status_code)(reason)

    async def notify(self, event_type: HookEvent, upload: UploadFields, request: RequestFields | None = None) -> None:
        """Put a post-* event in the outbox for delivery; a failure to record it is logged, never raised
        (the change it reports has happened)."""
        if not self.wants(event_type) or self.outbox is None:
            return
        event: HookPayload = {"type": event_type.value, "upload": upload}
        if request is not None:
            event["request"] = request
        try:
            await self.outbox.add(json.dumps(event), self.clock())
        except Exception:
            log.exception("could not record the %s hook event of upload %s", event_type, upload["id"])
            return
        self._wake.set()

    async def run_deliveries(self) -> None:
        """Deliver the outbox until cancelled: when woken by a new event, and every POLL_S."""
        assert self.outbox is not None
        while True:
            try:
                batch = await self.outbox.claim_due(self.clock(), timedelta(seconds=3 * self.timeout_s + 5))
                for item in batch:
                    await self._deliver(item)
            except Exception:  # a bad round (database busy...) must not end deliveries
                log.exception("hook delivery round failed")
                batch = []
            if not batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _deliver(self, item: PendingEvent) -> None:
        assert self.outbox is not None
        try:
            answer = await self._post(item.event)
            if answer.is_success:
                await self.outbox.delivered(item.id)
                return
            failure = f"the hook answered {answer.status_code}"
        except httpx.HTTPError as exc:
            failure = f"the hook is unreachable ({type(exc).__name__}: {exc})"
        now = self.clock()
        if now - item.created_at >= GIVE_UP_AFTER:
            log.error("hook event %d not delivered within %s; dropped: %s", item.id, GIVE_UP_AFTER, item.event[:200])
            await self.outbox.delivered(item.id)
            return
        delay = RETRY_DELAYS_S[min(item.attempts, len(RETRY_DELAYS_S) - 1)]
        # One line per failed attempt: the retries back off to one an hour, so this cannot flood the log.
        log.warning("hook event %d not delivered (attempt %d): %s; next try in %g s",
                    item.id, item.attempts + 1, failure, delay)  # fmt: skip
        await self.outbox.retry_at(item.id, now + timedelta(seconds=delay), item.attempts + 1)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
