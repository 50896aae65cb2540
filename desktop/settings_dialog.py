"""Settings… : party name, port, listener servers, start on launch, start at login.

Values are checked with the same PartyConfig rules the server uses, so the dialog can only
save a configuration that starts. It never blocks the loop: it is opened with `open()` and
reports the result through `saved`.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop import icons
from desktop.settings import MAX_NAME_LENGTH, Settings
from server.access import MAX_PIN_CHARS
from server.config import MAX_LISTENERS, MAX_WORKERS, ConfigError


class SettingsDialog(QDialog):
    saved = Signal(object)  # Settings

    def __init__(self, settings: Settings, *, running: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.original = settings
        self.setWindowTitle("Party Stream settings")
        self.setWindowIcon(icons.app_icon())
        self.setMinimumWidth(420)

        self.name = QLineEdit(settings.name)
        self.name.setMaxLength(MAX_NAME_LENGTH)
        self.name.setPlaceholderText("Shown on every guest's phone")
        self.port = QSpinBox()
        self.port.setRange(1024, 65535 - 1)
        self.port.setValue(settings.port)
        self.port.setToolTip(
            "Phones connect to this port; the listener servers use the next ones. "
            "If it is taken, the next free port is used."
        )
        self.workers = QSpinBox()
        self.workers.setRange(1, MAX_WORKERS)
        self.workers.setValue(settings.workers)
        self.workers.setToolTip(
            "Each listener server is a separate process. More servers carry more phones "
            "on a computer with more cores."
        )
        self.pin = QLineEdit(settings.pin)
        self.pin.setMaxLength(MAX_PIN_CHARS)
        self.pin.setPlaceholderText("None: anyone on the Wi-Fi may join")
        self.pin.setToolTip("Phones need this PIN to join; the QR code carries it.")
        self.max_listeners = QSpinBox()
        self.max_listeners.setRange(0, MAX_LISTENERS)
        self.max_listeners.setSpecialValueText("No limit")
        self.max_listeners.setValue(settings.max_listeners)
        self.max_listeners.setToolTip('The next phone sees "the party is full".')
        self.start_on_launch = QCheckBox("Start the party when Party Stream opens")
        self.start_on_launch.setChecked(settings.start_on_launch)
        self.start_at_login = QCheckBox("Open Party Stream when I log in")
        self.start_at_login.setChecked(settings.start_at_login)

        form = QFormLayout()
        form.addRow("Party name", self.name)
        form.addRow("Port", self.port)
        form.addRow("Listener servers", self.workers)
        form.addRow("Party PIN", self.pin)
        form.addRow("Most listeners", self.max_listeners)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d32f2f;")
        self.error.hide()
        self.note = QLabel(
            "The party is running: changes to the name, port and servers "
            "apply the next time it starts."
        )
        self.note.setWordWrap(True)
        self.note.setEnabled(False)
        self.note.setVisible(running)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addSpacing(6)
        layout.addWidget(self.start_on_launch)
        layout.addWidget(self.start_at_login)
        layout.addWidget(self.note)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def values(self) -> Settings:
        return replace(
            self.original,
            name=self.name.text().strip(),
            port=self.port.value(),
            workers=self.workers.value(),
            start_on_launch=self.start_on_launch.isChecked(),
            start_at_login=self.start_at_login.isChecked(),
            pin="".join(self.pin.text().split()),
            max_listeners=self.max_listeners.value(),
        )

    def _save(self) -> None:
        settings = self.values()
        try:
            settings.party_config(None)
        except ConfigError as exc:
            message = str(exc).replace("--port", "The port").replace("--workers", "Servers")
            message = message.replace("--max-listeners", "Most listeners")
            self.error.setText(message)
            self.error.show()
            return
        self.saved.emit(settings)
        self.accept()
