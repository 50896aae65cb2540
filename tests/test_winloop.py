"""The Windows ConnectionResetError handler: exactly that error is silenced, in every process."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from server import child, cli, coordinator, winloop, worker


def _context(exc: BaseException) -> dict[str, object]:
    return {"message": "Exception in callback", "exception": exc}


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_not_installed_off_windows(platform: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        assert winloop.install(loop, platform=platform) is False
        assert loop.get_exception_handler() is None
    finally:
        loop.close()


def test_swallows_connection_reset_and_delegates_everything_else() -> None:
    loop = asyncio.new_event_loop()
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        assert winloop.install(loop, platform="win32") is True
        handler = loop.get_exception_handler()
        assert handler is not None
        handler(loop, _context(ConnectionResetError(10054, "WinError 10054")))
        assert seen == []
        others = [ConnectionAbortedError(), OSError("disk"), ValueError("bug")]
        for other in others:
            handler(loop, _context(other))
        handler(loop, {"message": "no exception at all"})
        assert [ctx.get("exception") for ctx in seen] == [*others, None]
    finally:
        loop.close()


def test_default_handler_gets_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        winloop.install(loop, platform="win32")
        handler = loop.get_exception_handler()
        assert handler is not None
        handler(loop, _context(ConnectionResetError()))
        assert "Exception in callback" not in caplog.text
        handler(loop, _context(RuntimeError("boom")))
        assert "boom" in caplog.text
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("entry", "call"),
    [
        (child.child_main, "winloop.install("),  # what every child process runs in
        (worker.main, "child_main("),
        (coordinator.main, "child_main("),
        (cli.serve, "winloop.install("),
    ],
    ids=["child", "worker", "coordinator", "cli"],
)
def test_every_process_installs_it(entry: object, call: str) -> None:
    # Spawned processes cannot be spied on from here; their entry code must call it.
    assert call in inspect.getsource(entry)  # type: ignore[arg-type]
