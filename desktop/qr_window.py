"""The window guests' phones look at: a big QR code, the link, the party name, the live count.

It also carries the party's controls (Start/Stop, Source, and a menu with the rest), so the
same window doubles as the whole app when the desktop has no system tray. It is styled
like the web player (dark, violet accent) so host and guests see one product.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import icons
from desktop.channel_menu import ellipsize
from desktop.host import PartyHost
from desktop.menu import PartyMenu
from desktop.qr_code import QrCode
from server.phase import Phase

COPIED_FOR_MS = 2000
CHIP_NAME_CHARS = 14  # three chips side by side fit the narrowest window
NOTICE_MS = {"info": 6000, "warning": 15000, "error": 20000}

STYLE = """
QWidget#content { background: #14111f; }
QWidget#content QLabel { color: #f6f4ff; }
QLabel#name { font-size: 20pt; font-weight: 700; }
QLabel#pill { color: #b6b0cc; font-size: 10.5pt; }
QLabel#title { font-size: 15pt; font-weight: 600; }
QLabel#body, QLabel#hint, QLabel#caption { color: #b6b0cc; }
QLabel#count { font-size: 30pt; font-weight: 700; }
QPushButton#url {
    color: #f6f4ff; background: #1f1a33; border: 1px solid #342c52; border-radius: 10px;
    padding: 8px 12px; font-size: 12pt; font-family: monospace;
}
QPushButton#url:hover { border-color: #a855f7; }
QPushButton#primary {
    color: white; font-weight: 600; font-size: 11.5pt; border: 0; border-radius: 12px;
    padding: 10px 18px;
    background: qlineargradient(x1:0, y1:0, x2:1, y2:1, stop:0 #a855f7, stop:1 #ec4899);
}
QPushButton#primary[stop="true"] { background: #2a2440; border: 1px solid #463b6b; }
QPushButton#primary:disabled { background: #2a2440; color: #8f88a8; }
QToolButton {
    color: #f6f4ff; background: #1f1a33; border: 1px solid #342c52; border-radius: 12px;
    padding: 9px 12px; font-size: 10.5pt;
}
QToolButton:hover, QToolButton:pressed { border-color: #a855f7; }
QToolButton:disabled { color: #6f6888; }
QToolButton::menu-indicator { image: none; width: 0; }
QProgressBar { background: #241f38; border: 0; border-radius: 3px; max-height: 6px; }
QProgressBar::chunk {
    border-radius: 3px;
    background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #34d399, stop:1 #a855f7);
}
QLabel#chip { color: white; font-weight: 600; border-radius: 11px; padding: 4px 12px; }
QPushButton#talk {
    color: #f6f4ff; background: #1f1a33; border: 1px solid #342c52; border-radius: 12px;
    padding: 9px 12px; font-size: 10.5pt;
}
QPushButton#talk:pressed, QPushButton#talk[on="true"] {
    background: #be185d; border-color: #ec4899;
}
QPushButton#talk:disabled { color: #6f6888; }
QLabel#notice { border-radius: 10px; padding: 8px 12px; }
QLabel#notice[level="info"] { background: #1f2b3a; color: #cfe3ff; }
QLabel#notice[level="warning"] { background: #3a2e14; color: #ffe2a8; }
QLabel#notice[level="error"] { background: #3d1622; color: #ffc9d3; }
"""

PILL = {
    Phase.IDLE: ("#8f88a8", "Not started"),
    Phase.STARTING: ("#fbbf24", "Starting…"),
    Phase.LIVE: ("#34d399", "Live"),
    Phase.STOPPING: ("#fbbf24", "Stopping…"),
    Phase.ERROR: ("#fb7185", "Problem"),
}


def window_title(host: PartyHost) -> str:
    """The title says the state too, so the taskbar (and tests) can read it."""
    name = host.name or "Party Stream"
    if host.phase == Phase.LIVE:
        count = host.listeners
        if count is None:
            return f"{name} — live"
        return f"{name} — live, {count} listener" + ("" if count == 1 else "s")
    return f"{name} — {PILL[host.phase][1].rstrip('…').lower()}"


def mic_percent(talk: dict[str, Any] | None) -> int:
    """The mic's RMS on a -60..0 dBFS scale, as 0..100 for its meter."""
    level = (talk or {}).get("level_db")
    return 0 if level is None else max(0, min(100, round((level + 60.0) / 60.0 * 100)))


def level_percent(level: dict[str, float] | None) -> int:
    """Peak level on a -60..0 dBFS scale, as 0..100 for the meter."""
    if not level:
        return 0
    peak = float(level.get("peak_db", -120.0))
    return max(0, min(100, round((peak + 60.0) / 60.0 * 100)))


class QrWindow(QWidget):
    quit_requested = Signal()  # standalone mode: closing the window quits the app

    def __init__(self, host: PartyHost, menu: PartyMenu, *, standalone: bool = False) -> None:
        super().__init__()
        self.host = host
        self.menu = menu
        self.standalone = standalone
        self.setObjectName("QrWindow")
        # Styled through an inner widget: a stylesheet on the window itself would also
        # restyle the dialogs parented to it (settings, file picker).
        self.content = QWidget(objectName="content")
        self.content.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.content.setStyleSheet(STYLE)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.content)
        self.setWindowIcon(icons.app_icon())
        self.setMinimumSize(380, 560)
        self.resize(440, 700)
        self._copied_shown = False  # "Link copied ✓" stands in for the URL for a moment

        self.name_label = QLabel(objectName="name")
        self.name_label.setWordWrap(True)
        self.pill = QLabel(objectName="pill")
        self.pill.setTextFormat(Qt.TextFormat.RichText)

        # page 0: the code; page 1: a message (idle, starting, error)
        self.qr = QrCode()
        self.url_button = QPushButton(objectName="url")
        self.url_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.url_button.setToolTip("Copy the link")
        self.url_button.clicked.connect(self.copy_url)
        self.hint = QLabel("Scan with the phone's camera, or open the link", objectName="hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        qr_page = QWidget()
        qr_box = QVBoxLayout(qr_page)
        qr_box.setContentsMargins(0, 0, 0, 0)
        qr_box.setSpacing(10)
        qr_box.addWidget(self.qr, 1)
        qr_box.addWidget(self.url_button)
        qr_box.addWidget(self.hint)

        self.message_icon = QLabel()
        self.message_icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_title = QLabel(objectName="title")
        self.message_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_body = QLabel(objectName="body")
        self.message_body.setWordWrap(True)
        self.message_body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        message_page = QWidget()
        message_box = QVBoxLayout(message_page)
        message_box.addStretch(1)
        message_box.addWidget(self.message_icon)
        message_box.addSpacing(8)
        message_box.addWidget(self.message_title)
        message_box.addWidget(self.message_body)
        message_box.addSpacing(8)
        message_box.addWidget(self.busy)
        message_box.addStretch(1)

        self.stack = QStackedWidget()
        self.stack.addWidget(qr_page)
        self.stack.addWidget(message_page)
        self.stack.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.count = QLabel("–", objectName="count")
        self.caption = QLabel("listeners", objectName="caption")
        self.level = QProgressBar()
        self.level.setRange(0, 100)
        self.level.setTextVisible(False)
        self.level.setToolTip("Audio level of the source")
        stats = QHBoxLayout()
        stats.addWidget(self.count)
        caption_box = QVBoxLayout()
        caption_box.addStretch(1)
        caption_box.addWidget(self.caption)
        caption_box.addWidget(self.level)
        caption_box.addStretch(1)
        stats.addLayout(caption_box, 1)
        self.stats = QWidget()
        self.stats.setLayout(stats)
        stats.setContentsMargins(0, 0, 0, 0)
        # With several channels: one coloured chip per channel with its own count.
        self.chips = QWidget()
        self.chip_row = QHBoxLayout(self.chips)
        self.chip_row.setContentsMargins(0, 0, 0, 0)
        self.chip_row.setSpacing(8)
        self.chip_row.addStretch(1)
        self.chip_labels: list[QLabel] = []

        # Hold to talk (the tray's item can only toggle); holding Space does the same.
        self.talk_button = QPushButton("🎤  Hold to talk", objectName="talk")
        self.talk_button.setToolTip(
            "Hold while you speak: the music is turned down (or hold Space)"
        )
        self.talk_button.pressed.connect(lambda: self._hold_talk(True))
        self.talk_button.released.connect(lambda: self._hold_talk(False))
        self.mic_level = QProgressBar()
        self.mic_level.setRange(0, 100)
        self.mic_level.setTextVisible(False)
        self.mic_level.setToolTip("Your microphone's level")
        self.mic_level.hide()
        self._holding = False

        self.notice = QLabel(objectName="notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self._notice_timer = QTimer(self, singleShot=True, timeout=self.notice.hide)

        self.primary = QPushButton(objectName="primary")
        self.primary.setCursor(Qt.CursorShape.PointingHandCursor)
        self.primary.clicked.connect(menu.toggle.trigger)
        self.source_button = QToolButton()
        self.source_button.setMenu(menu.button_menu)
        self.source_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.source_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.more_menu = QMenu(self)
        for action in (
            menu.show_listeners,
            menu.open_player,
            menu.open_settings,
            menu.open_logs,
            menu.about,
        ):
            self.more_menu.addAction(action)
        self.more_menu.addSeparator()
        self.more_menu.addAction(menu.quit)
        self.more_button = QToolButton(text="⋯")
        self.more_button.setToolTip("More")
        self.more_button.setMenu(self.more_menu)
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        controls = QHBoxLayout()
        controls.setSpacing(8)
        controls.addWidget(self.primary, 1)
        controls.addWidget(self.source_button)
        controls.addWidget(self.more_button)

        layout = QVBoxLayout(self.content)
        layout.setContentsMargins(24, 22, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(self.name_label)
        layout.addWidget(self.pill)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.stats)
        layout.addWidget(self.chips)
        layout.addWidget(self.talk_button)
        layout.addWidget(self.mic_level)
        layout.addWidget(self.notice)
        layout.addLayout(controls)

        QShortcut(QKeySequence.StandardKey.Copy, self, self.copy_url)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        host.changed.connect(self.refresh)
        menu.toggle.changed.connect(self._sync_primary)
        self.refresh()

    # -- state -> widgets --------------------------------------------------------------------
    def refresh(self) -> None:
        host = self.host
        phase = host.phase
        self.setWindowTitle(window_title(host))
        self.name_label.setText(host.name or "Party Stream")
        color, word = PILL[phase]
        if phase == Phase.LIVE and host.problem:  # phones stay connected, the source broke
            color, word = "#fbbf24", "Live, source problem"
        elif phase == Phase.STARTING and host.url:  # the QR code works: phones wait on the page
            word = "Warming up…"
        several = len(host.channels) > 1
        if several:
            detail = f"{len(host.channels)} channels"
            button, tip = f"{len(host.channels)} channels", host.source_label
        else:
            detail = host.source_label if host.running else host.settings.source.short_label
            if host.now_playing:  # what the guests hear beats where it comes from
                detail = f"♪ {host.now_playing}"
            button = ellipsize(host.settings.source.short_label, 18)
            tip = f"Source: {host.settings.source.short_label}"
        self.pill.setText(
            f'<span style="color:{color}">●</span>&nbsp; {word} &nbsp;·&nbsp; {_html(detail)}'
        )
        self.source_button.setText(f"♪  {button}")
        self.source_button.setToolTip(tip)
        if self.source_button.menu() is not self.menu.button_menu:
            self.source_button.setMenu(self.menu.button_menu)
        url = host.url
        if url:
            self.qr.set_text(url)
            if not self._copied_shown:
                self.url_button.setText(url)
            self.stack.setCurrentIndex(0)
        else:
            self.qr.set_text("")
            self._show_message(phase)
            self.stack.setCurrentIndex(1)
            problem = self.message_body.property("problem")
            if phase == Phase.ERROR and self.notice.text() == problem:
                self.notice.hide()  # the page says it already
        live = phase == Phase.LIVE
        self.stats.setVisible(live)
        count = host.listeners
        self.count.setText("–" if count is None else str(count))
        self.caption.setText(
            "counting listeners…" if count is None else ("listener" if count == 1 else "listeners")
        )
        self.level.setValue(level_percent(host.level))
        self._show_chips(live and several)
        self._refresh_talk(live)
        self._sync_primary()

    def _show_chips(self, shown: bool) -> None:
        """Each channel's colour, name and count ("–" until its figure arrives)."""
        self.chips.setVisible(shown)
        if not shown:
            return
        channels = self.host.channels
        while len(self.chip_labels) > len(channels):
            self.chip_labels.pop().deleteLater()
        while len(self.chip_labels) < len(channels):
            chip = QLabel(objectName="chip")
            self.chip_row.insertWidget(len(self.chip_labels), chip)
            self.chip_labels.append(chip)
        for index, (chip, channel) in enumerate(zip(self.chip_labels, channels, strict=True)):
            row = self.host.channel_status(index) or {}
            count = row.get("listeners")
            name = ellipsize(channel.name, CHIP_NAME_CHARS)
            chip.setText(f"{name}  {'–' if count is None else count}")
            chip.setStyleSheet(f"background: {channel.colour};")
            chip.setToolTip(f"{channel.name}: {channel.source.short_label}")

    def _refresh_talk(self, live: bool) -> None:
        talk = self.host.talk
        on = bool(talk and talk.get("on"))
        always = self.host.settings.talk_mode == "always"
        self.talk_button.setVisible(live)
        self.talk_button.setEnabled(not always)
        self.talk_button.setText("🎤  Always on air" if always else "🎤  Hold to talk")
        if self.talk_button.property("on") != on:
            self.talk_button.setProperty("on", on)
            self.talk_button.style().unpolish(self.talk_button)
            self.talk_button.style().polish(self.talk_button)
        self.mic_level.setVisible(live and on)
        self.mic_level.setValue(mic_percent(talk))

    def _hold_talk(self, on: bool) -> None:
        """Pressed: on air; released: off (each edge once, whatever the key repeat does)."""
        if on != self._holding:
            self._holding = on
            self.menu.talk_requested.emit(on)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and self.talk_button.isVisible():
            if not event.isAutoRepeat() and self.talk_button.isEnabled():
                self._hold_talk(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and self.talk_button.isVisible():
            if not event.isAutoRepeat():
                self._hold_talk(False)
            return
        super().keyReleaseEvent(event)

    def _sync_primary(self) -> None:
        action = self.menu.toggle
        self.primary.setText(action.text())
        self.primary.setEnabled(action.isEnabled())
        stop = self.host.active
        if self.primary.property("stop") != stop:
            self.primary.setProperty("stop", stop)
            self.primary.style().unpolish(self.primary)
            self.primary.style().polish(self.primary)

    def _show_message(self, phase: str) -> None:
        pixmap_icon = icons.app_icon() if phase == Phase.IDLE else icons.state_icon(phase)
        self.message_icon.setPixmap(pixmap_icon.pixmap(QSize(88, 88), self.devicePixelRatioF()))
        self.busy.setVisible(phase in (Phase.STARTING, Phase.STOPPING))
        if phase == Phase.STARTING:
            title, body = "Starting the party…", "The QR code appears here in a moment."
        elif phase == Phase.STOPPING:
            title, body = "Stopping the party…", "Phones are being disconnected."
        elif phase == Phase.ERROR:
            title = (
                "The party ran into a problem"
                if self.host.running
                else ("The party is not running")
            )
            problem = self.host.problem or "Something went wrong."
            self.message_body.setProperty("problem", problem)
            advice = (
                "Stop the party and start it again."
                if self.host.running
                else ("Press Start party to try again.")
            )
            body = f"{problem}\n\n{advice}"
        else:
            title = "Ready when you are"
            body = (
                "Press Start party and a QR code appears here. Guests scan it with their "
                "phones and listen in sync — no app needed."
            )
        self.message_title.setText(title)
        self.message_body.setText(body)

    # -- actions -----------------------------------------------------------------------------
    def copy_url(self) -> None:
        url = self.host.url
        if not url:
            return
        QGuiApplication.clipboard().setText(url)
        self._copied_shown = True
        self.url_button.setText("Link copied ✓")
        QTimer.singleShot(COPIED_FOR_MS, self._end_copied)

    def _end_copied(self) -> None:
        self._copied_shown = False
        self.refresh()

    def show_notice(self, level: str, message: str) -> None:
        if message == self.message_body.property("problem") and self.stack.currentIndex() == 1:
            return  # already the page's own message
        self.notice.setProperty("level", level if level in NOTICE_MS else "info")
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.setText(message)
        self.notice.show()
        self._notice_timer.start(NOTICE_MS.get(level, 8000))

    def present(self) -> None:
        """Show, un-minimise and bring to front (a second launch or a tray click)."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.standalone:
            event.ignore()
            self.quit_requested.emit()
            return
        event.accept()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.DevicePixelRatioChange:
            self.refresh()
        super().changeEvent(event)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
