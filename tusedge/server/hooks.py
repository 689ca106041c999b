"""Hooks: tusedge tells an application about uploads by POSTing JSON events to ``--hook-url``.

``pre-create`` is asked before an upload is created and decides: a 2xx answer lets it be created; any
other answer refuses it with that status (a 4xx; anything else becomes 403) and the first line of the
answer's body as the reason — the place for authorisation, quotas, naming rules. If the hook cannot be
reached the upload is refused with 503: a hook that guards uploads must not be skipped when it is down.

``post-create``, ``post-finish`` (the upload is complete: merged and verified), ``post-terminate`` and
``post-expire`` are notifications, sent in the background and retried (1 + 3 tries with backoff) until
the hook answers 2xx; they are not kept across a server restart.

An event: ``{"type": ..., "upload": {"id", "path", "size", "offset", "metadata", "concat", "parts"},
"request": {"method", "path", "remote_addr", "headers"}}`` — ``request`` only for events a request
caused; metadata values decoded as UTF-8.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from tusedge.config import Settings
from tusedge.errors import HookRefused, HookUnavailable
from tusedge.protocol.metadata import parse_metadata
from tusedge.protocol.requests import CreateUpload
from tusedge.protocol.upload import UploadInfo

log = logging.getLogger("tusedge")

EVENTS = ("pre-create", "post-create", "post-finish", "post-terminate", "post-expire")
RETRY_DELAYS_S = (0.5, 2.0, 8.0)
# Request headers a hook may need to decide (who is asking); never cookies.
FORWARDED_HEADERS = ("authorization", "user-agent", "x-forwarded-for", "x-real-ip", "origin", "referer")


def _metadata(header: str | None) -> dict[str, str]:
    return {k: v.decode("utf-8", errors="replace") for k, v in parse_metadata(header).items()}


def upload_fields(info: UploadInfo, base_path: str) -> dict[str, Any]:
    return {
        "id": info.id,
        "path": base_path + info.id,
        "size": info.length,
        "offset": info.offset,
        "metadata": _metadata(info.metadata),
        "concat": info.concat.value if info.concat is not None else None,
        "parts": list(info.parts),
    }


def proposed_fields(request: CreateUpload) -> dict[str, Any]:
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


def request_fields(method: str, path: str, remote_addr: str | None, headers: Mapping[str, str]) -> dict[str, Any]:
    chosen = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    return {"method": method, "path": path, "remote_addr": remote_addr, "headers": chosen}


class Hooks:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.hook_url
        self.events = frozenset(settings.hook_events) if self.url else frozenset()
        self.timeout_s = settings.hook_timeout_s
        self._client: httpx.AsyncClient | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    def wants(self, event: str) -> bool:
        return event in self.events

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def _post(self, event: dict[str, Any]) -> httpx.Response:
        return await self._http().post(self.url, json=event, headers={"Hook-Name": event["type"]})

    async def pre_create(self, upload: dict[str, Any], request: dict[str, Any]) -> None:
        """Ask the hook; raise HookRefused with its status and reason, or HookUnavailable."""
        if not self.wants("pre-create"):
            return
        try:
            answer = await self._post({"type": "pre-create", "upload": upload, "request": request})
        except httpx.HTTPError as exc:
            log.error("pre-create hook unreachable: %s", exc)
            raise HookUnavailable(headers={"Retry-After": "5"}) from None
        if answer.is_success:
            return
        reason = answer.text.strip().splitlines()[0][:300] if answer.text.strip() else None
        status = answer.status_code if 400 <= answer.status_code < 500 else 403
        raise HookRefused(reason, status=status)

    def notify(self, event_type: str, upload: dict[str, Any], request: dict[str, Any] | None = None) -> None:
        """Send a post-* event in the background (retried); never fails the caller."""
        if not self.wants(event_type):
            return
        event: dict[str, Any] = {"type": event_type, "upload": upload}
        if request is not None:
            event["request"] = request
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, event: dict[str, Any]) -> None:
        for delay in (0.0, *RETRY_DELAYS_S):
            await asyncio.sleep(delay)
            try:
                if (await self._post(event)).is_success:
                    return
            except httpx.HTTPError:
                pass
        log.error("%s hook for upload %s not delivered after %d tries", event["type"], event["upload"]["id"],
                  1 + len(RETRY_DELAYS_S))  # fmt: skip

    async def close(self, grace_s: float = 5.0) -> None:
        """Give deliveries under way a moment to finish, then stop."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=grace_s)
            for task in self._deliveries:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()
