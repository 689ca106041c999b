"""The hook events are one StrEnum (tusedge.events): settings, the hook client and every call site use it."""

from __future__ import annotations

import pytest

from tusedge.config import Settings, SettingsError
from tusedge.events import HookEvent
from tusedge.server.hooks import Hooks


def test_every_hook_event_is_on_by_default() -> None:
    assert Settings().hook_events == tuple(HookEvent)
    assert [event.value for event in HookEvent] == [
        "pre-create", "post-create", "post-finish", "post-terminate", "post-expire"
    ]  # fmt: skip


def test_an_unknown_hook_event_is_refused() -> None:
    with pytest.raises(SettingsError, match="post-finsh"):
        Settings(hook_url="http://127.0.0.1:9/hook", hook_events=("post-finsh",))


def test_only_pre_create_decides_and_needs_no_outbox() -> None:
    assert [event for event in HookEvent if event.decides] == [HookEvent.PRE_CREATE]
    asking = Hooks(Settings(hook_url="http://127.0.0.1:9/hook", hook_events=("pre-create",)), outbox=None)
    assert asking.wants(HookEvent.PRE_CREATE) and not asking.delivers
    with pytest.raises(ValueError, match="outbox"):
        Hooks(Settings(hook_url="http://127.0.0.1:9/hook", hook_events=("pre-create", "post-finish")), outbox=None)
