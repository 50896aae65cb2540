"""Desktop tests: Qt offscreen in this process, asyncio inside Qt through qasync.

The loop-factory hook below applies to this directory only, so every async test here runs
on a qasync loop (as the tray app does) while the rest of the suite keeps plain asyncio.
The offscreen platform is passed to QApplication as an argument, not through the
environment, so other tests and the child processes they start are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

QT_ARGS = ["partystream-tests", "-platform", "offscreen"]


def qt_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(QT_ARGS)
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    return app


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    return {"qasync": lambda: qasync.QEventLoop(qt_app())}


@pytest.fixture(scope="session")
def qapp_args() -> list[str]:
    """pytest-qt's QApplication, if it makes one first, is offscreen too."""
    return QT_ARGS


@pytest.fixture
def app_paths(tmp_path: Path) -> Iterator[Any]:
    from desktop.settings import AppPaths

    yield AppPaths(tmp_path / "config", tmp_path / "logs")


@pytest.fixture
def xsession(tmp_path: Path) -> Iterator[Any]:
    """A fresh Xvfb display with trayer as the tray host (skipped if the tools are missing)."""
    from tests.desktop import xsession as xs

    if missing := xs.missing_tools():
        pytest.skip(
            f"needs {', '.join(missing)} (apt-get install xvfb trayer xdotool "
            "x11-utils imagemagick zbar-tools)"
        )
    session = xs.start(tmp_path)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
async def rig(app_paths, monkeypatch):  # type: ignore[no-untyped-def]
    """A Shell over a fake party, as tests/desktop/test_shell.py builds it."""
    from tests.desktop.test_shell import close_rig, make_rig

    made = await make_rig(app_paths, monkeypatch)
    yield made
    await close_rig(made)
