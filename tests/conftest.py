"""Fixtures: a real party (coordinator + worker processes) on free ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from server.channels import Channel
from server.config import PartyConfig
from server.control import PartyController
from server.sources.base import SourceSpec
from tests.helpers import descendants, eventually, free_base_port
from tests.listener import Listener

StartParty = Callable[..., "contextlib.AbstractAsyncContextManager[PartyController]"]


@contextlib.asynccontextmanager
async def running_party(
    source: SourceSpec | list[Channel] | None = None,
    *,
    workers: int = 2,
    events: list[str] | None = None,
    **config: object,
) -> AsyncIterator[PartyController]:
    """A live party; on exit it is stopped and no child process may remain. `events` collects
    "level: text" of every event from the start on."""
    cfg = PartyConfig(
        port=free_base_port(workers + 1), workers=workers, public_host="127.0.0.1", **config
    )
    party = PartyController(cfg)
    if events is not None:
        party.add_event_listener(lambda level, text: events.append(f"{level}: {text}"))
    await party.start(source or SourceSpec("demo"))
    try:
        yield party
    finally:
        await party.stop()
        await eventually(lambda: not descendants(), timeout=10, what="no child processes")


@pytest.fixture
def start_party() -> StartParty:
    return running_party


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    """Collects Listener objects and closes them after the test."""
    made: list[Listener] = []
    yield made
    for listener in made:
        await listener.close()


def worker_url(party: PartyController, worker: int) -> str:
    return f"ws://127.0.0.1:{party.status.workers[worker]['port']}/sendspin"


def front_url(party: PartyController, path: str = "") -> str:
    return f"http://127.0.0.1:{party.status.port}{path}"
