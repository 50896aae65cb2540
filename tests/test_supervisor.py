"""Startup never hangs on workers that fail before they report."""

from __future__ import annotations

import asyncio
import time

from server import ipc, supervisor
from server.supervisor import Supervisor
from tests.helpers import descendants, free_base_port


def _supervisor(reports: list[str], **overrides: object) -> Supervisor:
    options: dict[str, object] = {
        "count": 2,
        "host": "127.0.0.1",
        "first_port": free_base_port(2),
        "name": "test",
        "log_dir": None,
        "report": lambda level, msg: reports.append(msg),
        "on_change": lambda: None,
    }
    options.update(overrides)
    return Supervisor(**options)  # type: ignore[arg-type]


async def test_workers_that_cannot_bind_report_it_and_are_given_up() -> None:
    reports: list[str] = []
    sup = _supervisor(reports, host="192.0.2.123")  # an address this machine does not have
    try:
        assert await asyncio.wait_for(sup.start(), 60) == 0
    finally:
        await sup.stop()
    assert len(reports) == 2
    assert all("is unavailable" in r and "giving up on it" in r for r in reports), reports
    assert not descendants()


async def test_workers_that_die_before_reporting_do_not_hang_startup(monkeypatch) -> None:
    real_listen = ipc.listen

    async def listen_then_point_children_nowhere(token, on_link):  # the link never answers
        server, _ = await real_listen(token, on_link)
        return server, free_base_port(1)

    monkeypatch.setattr(supervisor.ipc, "listen", listen_then_point_children_nowhere)
    reports: list[str] = []
    sup = _supervisor(reports)
    t0 = time.monotonic()
    try:
        assert await asyncio.wait_for(sup.start(), 60) == 0
    finally:
        await sup.stop()
    assert time.monotonic() - t0 < supervisor.STARTUP_TIMEOUT_S
    assert len(reports) == 2 and all("exited with code 1" in r for r in reports), reports
    assert not descendants()
