"""One Party Stream per user: a second launch asks the first to show its window, then exits.

Two tray icons fighting over the same port would only confuse the host, so the first
instance listens on a local socket (a Unix socket / Windows named pipe, private to the
user) and later launches hand it a one-line command.
"""

from __future__ import annotations

import getpass
import hashlib
import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 1000
COMMANDS = ("show",)


def instance_key(scope: str) -> str:
    """A socket name private to this user and this settings folder (tests get their own)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (odd containers): the scope still separates instances
        user = "user"
    digest = hashlib.sha256(f"{user}\0{scope}".encode()).hexdigest()[:16]
    return f"partystream-{digest}"


def send(key: str, command: str = "show", timeout_ms: int = CONNECT_TIMEOUT_MS) -> bool:
    """Deliver `command` to a running instance; False when none answers."""
    sock = QLocalSocket()
    sock.connectToServer(key)
    if not sock.waitForConnected(timeout_ms):
        return False
    sock.write(f"{command}\n".encode())
    delivered = sock.waitForBytesWritten(timeout_ms)
    sock.disconnectFromServer()
    if sock.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        sock.waitForDisconnected(timeout_ms)
    return delivered


class SingleInstance(QObject):
    """Owns the per-user socket; `command_received` fires when another launch calls."""

    command_received = Signal(str)

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self._server: QLocalServer | None = None

    def claim(self) -> bool:
        """True when this is the first instance; otherwise the first one was told to show."""
        if send(self.key, "show"):
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.key):
            # A socket file left by a crashed instance: nobody answered above, so reclaim it.
            QLocalServer.removeServer(self.key)
            if not server.listen(self.key):
                log.warning("single-instance socket unavailable: %s", server.errorString())
                return True  # better two instances than none
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def _accept(self) -> None:
        assert self._server is not None
        while (sock := self._server.nextPendingConnection()) is not None:
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(sock.deleteLater)

    def _read(self, sock: QLocalSocket) -> None:
        while sock.canReadLine():
            command = bytes(sock.readLine().data()).decode(errors="replace").strip()
            if command in COMMANDS:
                self.command_received.emit(command)
            else:
                log.info("ignored unknown instance command %r", command[:40])

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
