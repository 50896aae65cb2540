"""Listeners…: one row per phone, and the host's hand on each (mute, disconnect, block).

Live without polling: rows arrive with every status the party pushes (workers send theirs
when something changed, server/roster.py), and a one-second timer only ages the
"connected" column while the panel is visible.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop import icons
from desktop.host import PartyHost

COLUMNS = ("Name", "Codec", "kbit/s", "Sync", "Offset", "State", "Connected", "Server")
TICK_MS = 1000
STATE_LABELS = {
    "playing": "Playing",
    "connecting": "Connecting",
    "buffering": "Buffering",
    "background": "In background",
    "reconnecting": "Reconnecting",
}


def connected_for(since: float, now: float) -> str:
    seconds = max(0, int(now - since))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def cells(row: dict[str, Any], now: float) -> tuple[str, ...]:
    sync = row.get("sync_ms")
    state = STATE_LABELS.get(row.get("state", ""), row.get("state", ""))
    if row.get("muted"):
        state += " · muted by you"
    return (
        row.get("name") or "Phone",
        (row.get("codec") or "–").upper(),
        "–" if row.get("kbps") is None else str(row["kbps"]),
        "–" if sync is None else f"{round(sync)} ms",
        f"{row.get('offset_ms', 0)} ms",  # the phone's own timing adjustment (calibration)
        state,
        connected_for(row.get("since", now), now),
        str(row.get("worker", 0) + 1),
    )


class ListenersPanel(QWidget):
    def __init__(self, host: PartyHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.setWindowTitle("Listeners — Party Stream")
        self.setWindowIcon(icons.app_icon())
        self.resize(760, 360)
        self.rows: list[dict[str, Any]] = []

        self.summary = QLabel()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.mute = QPushButton("Mute")
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.setToolTip("The phone may come back in a minute.")
        self.block = QPushButton("Block")
        self.block.setToolTip("The phone cannot rejoin this party.")
        self.mute.clicked.connect(self._toggle_mute)
        self.disconnect_button.clicked.connect(lambda: self._act("disconnect"))
        self.block.clicked.connect(lambda: self._act("block"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        for button in (self.mute, self.disconnect_button, self.block):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

        self._tick = QTimer(self, interval=TICK_MS)
        self._tick.timeout.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._sync_buttons)
        host.changed.connect(self.refresh)

    # -- state -> table ----------------------------------------------------------------------
    def refresh(self) -> None:
        if not self.isVisible():
            return  # present() catches up
        selected = self.selected()
        self.rows = self.host.roster
        now = time.time()
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, text in enumerate(cells(row, now)):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
        self.table.clearSelection()
        if selected is not None:
            self.select(selected["id"])  # the same phone, wherever its row moved
        count = len(self.rows)
        self.summary.setText(
            "No phones yet" if count == 0 else f"{count} phone" + ("" if count == 1 else "s")
        )
        self._sync_buttons()

    def selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.rows):
            return None
        return self.rows[rows[0].row()]

    def select(self, client_id: str) -> None:
        for r, row in enumerate(self.rows):
            if row["id"] == client_id:
                self.table.selectRow(r)

    def _sync_buttons(self) -> None:
        row = self.selected()
        for button in (self.mute, self.disconnect_button, self.block):
            button.setEnabled(row is not None)
        self.mute.setText("Unmute" if row is not None and row.get("muted") else "Mute")

    # -- the host's actions ------------------------------------------------------------------
    def _toggle_mute(self) -> None:
        row = self.selected()
        if row is not None:
            self.host.act_on_listener(row, "unmute" if row.get("muted") else "mute")

    def _act(self, action: str) -> None:
        row = self.selected()
        if row is not None:
            self.host.act_on_listener(row, action)

    # -- window ------------------------------------------------------------------------------
    def present(self) -> None:
        self.show()
        self.refresh()
        self.raise_()
        self.activateWindow()
        self._tick.start()

    def hideEvent(self, event: Any) -> None:
        self._tick.stop()
        super().hideEvent(event)

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)
