"""The desktop tests run on qasync, like the app (and the rest of the suite does not)."""

from __future__ import annotations

import asyncio

import pytest
import qasync


async def test_desktop_tests_run_inside_qt() -> None:
    assert isinstance(asyncio.get_running_loop(), qasync.QEventLoop)


async def test_background_work_returns_and_raises() -> None:
    import threading

    from server.tasks import in_daemon_thread

    def where() -> tuple[str, bool]:
        thread = threading.current_thread()
        return thread.name, thread.daemon

    assert await in_daemon_thread(where, name="job") == ("job", True)

    def fails() -> None:
        raise ValueError("no sound server")

    with pytest.raises(ValueError, match="no sound server"):
        await in_daemon_thread(fails)

