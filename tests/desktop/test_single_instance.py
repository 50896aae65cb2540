"""One app per user: a second launch makes the first show its window, then exits."""

from __future__ import annotations

import uuid
from pathlib import Path

from PySide6.QtCore import QDir

from desktop.single_instance import SingleInstance, instance_key, send
from tests.desktop.conftest import qt_app
from tests.helpers import eventually


def unique_key() -> str:
    return instance_key(f"test-{uuid.uuid4()}")


async def test_second_instance_hands_over_and_first_is_told() -> None:
    key = unique_key()
    first = SingleInstance(key)
    commands: list[str] = []
    first.command_received.connect(commands.append)
    assert first.claim()
    try:
        second = SingleInstance(key)
        assert not second.claim(), "the second launch must give way"
        await eventually(lambda: commands == ["show"], timeout=5, what="show command")
    finally:
        first.release()
    assert not send(key, timeout_ms=200), "nobody listens after release"


async def test_stale_socket_from_a_crash_is_reclaimed() -> None:
    qt_app()
    key = unique_key()
    stale = Path(QDir.tempPath()) / key
    stale.write_text("left behind by a crashed instance")
    instance = SingleInstance(key)
    try:
        assert instance.claim()
        assert send(key)
    finally:
        instance.release()
        stale.unlink(missing_ok=True)


def test_keys_are_per_user_and_per_settings_folder() -> None:
    assert instance_key("/home/a/.config/PartyStream") == instance_key(
        "/home/a/.config/PartyStream"
    )
    assert instance_key("/a") != instance_key("/b")
    assert instance_key("/a").startswith("partystream-")
