"""Now playing and playlists in the tray app: the tooltip, the menu's status line and the QR
window show what the guests hear; Next/Previous work while a playlist plays; a folder or a
playlist file can be chosen, with shuffle remembered."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog

from desktop.tray import tooltip
from server.sources.base import SourceSpec
from tests.desktop.test_shell import Rig, go_live
from tests.helpers import eventually

TRACK = {"title": "Song A", "artist": "The Band", "album": "", "label": "a",
         "duration_ms": 1000, "artwork": None}  # fmt: skip



async def test_now_playing_shows_in_tooltip_menu_and_qr_window(rig: Rig) -> None:
    await go_live(rig)
    assert "♪" not in tooltip(rig.host), "nothing known yet: nothing made up"
    rig.party.report(now_playing=TRACK)
    assert "♪ Song A — The Band" in tooltip(rig.host)
    assert "Song A — The Band" in rig.menu.status_action.text()
    assert "Song A — The Band" in rig.shell.window.pill.text()
    # A source with no title: its label (e.g. a file name, "System audio") stands in.
    rig.party.report(now_playing={**TRACK, "title": "", "artist": "", "label": "System audio"})
    assert "♪ System audio" in tooltip(rig.host)


async def test_next_and_previous_follow_the_playlist(rig: Rig, tmp_path: Path) -> None:
    await go_live(rig)
    assert not rig.menu.next_track.isEnabled(), "the demo has no next track"
    (tmp_path / "a.flac").write_bytes(b"")
    source = rig.menu.channels[0]
    source.shuffle.setChecked(True)  # remembered for the next list, the demo keeps playing
    assert rig.party.sources == [SourceSpec("demo")]

    source.open_folder.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    dialog.selectFile(str(tmp_path))
    dialog.accept()
    want = SourceSpec("playlist", str(tmp_path), shuffle=True)
    await eventually(lambda: rig.host.settings.source == want, timeout=5, what="folder")
    assert rig.party.sources[-1] == want and rig.saved().source == want
    assert source.open_folder.isChecked() and tmp_path.name in source.open_folder.text()

    assert rig.menu.next_track.isEnabled() and rig.menu.previous_track.isEnabled()
    rig.menu.next_track.trigger()
    rig.menu.previous_track.trigger()
    await eventually(lambda: rig.party.skips == [1, -1], timeout=5, what="skips")

    # An M3U through "Open file or playlist…" is a playlist too.
    playlist = tmp_path / "mix.m3u"
    playlist.write_text("a.flac\n")
    source.open_file.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QFileDialog)
    dialog.selectFile(str(playlist))
    dialog.accept()
    want = SourceSpec("playlist", str(playlist), shuffle=True)
    await eventually(lambda: rig.host.settings.source == want, timeout=5, what="m3u")


async def test_host_types_what_plays_for_system_audio(rig: Rig) -> None:
    await go_live(rig)
    assert not rig.menu.type_track.isVisible(), "files and the demo have their own titles"
    rig.menu.channels[0].system.setEnabled(True)
    rig.menu.source_chosen.emit(SourceSpec("system"), 0)
    await eventually(lambda: rig.host.settings.source.kind == "system", timeout=5)
    assert rig.menu.type_track.isVisible()
    rig.menu.type_track.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QInputDialog)
    dialog.setTextValue("Daft Punk - One More Time")
    dialog.accept()
    await eventually(lambda: rig.party.typed == [("One More Time", "Daft Punk")], timeout=5)
