"""Small dialogs: pick a music file, type a stream URL, About.

All are opened with `open()` (never `exec()`), so the asyncio loop keeps running and the
party keeps serving while the host browses; results come back through callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

from desktop import icons
from desktop.version import app_version

AUDIO_FILTER = (
    "Audio files and playlists (*.mp3 *.flac *.wav *.ogg *.oga *.opus *.m4a *.aac *.wma *.aiff "
    "*.aif *.mka *.webm *.mp4 *.m3u *.m3u8 *.pls);;All files (*)"
)


def check_url(text: str) -> str | None:
    """A reason the URL cannot be a stream, or None when it looks playable."""
    url = urlparse(text.strip())
    if url.scheme not in ("http", "https") or not url.netloc:
        return "Enter a full stream address, starting with http:// or https://."
    return None


def open_file(parent: QWidget | None, start_dir: str, done: Callable[[str], None]) -> QFileDialog:
    if not start_dir or not Path(start_dir).is_dir():
        start_dir = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MusicLocation)
    dialog = QFileDialog(parent, "Play a music file", start_dir, AUDIO_FILTER)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setWindowIcon(icons.app_icon())
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.fileSelected.connect(done)
    dialog.open()
    return dialog


def open_folder(
    parent: QWidget | None, start_dir: str, done: Callable[[str], None]
) -> QFileDialog:
    """A folder of music, played as a playlist (sorted, subfolders included)."""
    if not start_dir or not Path(start_dir).is_dir():
        start_dir = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MusicLocation)
    dialog = QFileDialog(parent, "Play a folder of music", start_dir)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.setWindowIcon(icons.app_icon())
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.fileSelected.connect(done)
    dialog.open()
    return dialog


def type_track(parent: QWidget | None, current: str, done: Callable[[str], None]) -> QInputDialog:
    """Where the computer cannot tell what plays (macOS, a turntable on line-in)."""
    label = "Shown on the guests' phones (e.g. \"Artist - Title\"):"
    value = current.replace(" — ", " - ")
    return _ask_text(parent, "What's playing?", label, value, 420, done)


def open_url(parent: QWidget | None, current: str, done: Callable[[str], None]) -> QInputDialog:
    label = "Internet radio or stream address (http:// or https://):"
    return _ask_text(parent, "Play a stream", label, current, 480, done)


def _ask_text(
    parent: QWidget | None,
    title: str,
    label: str,
    value: str,
    width: int,
    done: Callable[[str], None],
) -> QInputDialog:
    """A one-line question, non-modal to the app (the tray keeps working meanwhile)."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setWindowIcon(icons.app_icon())
    dialog.setLabelText(label)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    dialog.setTextValue(value)
    dialog.resize(width, dialog.sizeHint().height())
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.textValueSelected.connect(done)
    dialog.open()
    return dialog


def about(parent: QWidget | None, paths_note: str) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About Party Stream")
    box.setIconPixmap(icons.app_icon().pixmap(64, 64))
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(
        f"<b>Party Stream</b> {app_version()}<br>"
        "Turn this computer into the host of a silent disco: guests scan the QR code and "
        "listen in sync on their phones."
    )
    box.setInformativeText(paths_note)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
