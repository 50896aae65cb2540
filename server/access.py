"""Who may join the party: an optional PIN, a listener cap and the host's blocklist.

Enforced where a phone can reach us, not only in the page: the front door's /api/join checks
the PIN, the cap and the blocklist and hands out a short-lived *ticket* bound to the phone's
player id; a worker admits a WebSocket hello only with a valid ticket for that id while a PIN
is set (sendspin-js keeps only the host and path of its URL, so the ticket rides in the path:
`/t/<ticket>/sendspin`). The cap and the blocklist are checked again at the worker's hello,
so a direct WebSocket cannot skip them. Native clients (speakers, the CLI player) cannot
fetch a ticket: with a PIN set they are refused, which is what a PIN is for.

Guessing is throttled per address: WRONG_PINS_IN_A_ROW wrong PINs lock the address out for
LOCKOUT_S (doubling up to LOCKOUT_MAX_S); a right PIN clears the streak. The loopback host is
not exempt here (unlike the general API rate limit): a PIN has to hold for everyone.

Setting changes never touch existing listeners: a phone already connected (or reconnecting
with its id still known to its worker) keeps its place whatever the PIN or cap becomes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_PIN_CHARS = 12
MAX_ID_CHARS = 128  # as server/admission.py
WRONG_PINS_IN_A_ROW = 20
LOCKOUT_S = 30.0
LOCKOUT_MAX_S = 300.0
TICKET_TTL_S = 60.0  # the page connects right after /api/join; a reconnect asks again
KICK_COOLDOWN_S = 60.0  # "disconnect": the phone may come back after this, unlike "block"
TRACKED_ADDRESSES = 4096  # bounded memory for the guessing guard

# Refusal reasons the page knows (resources/web/static/pin.js) and what it is told.
REASONS = {
    "pin": "This party has a PIN. Ask the host for it.",
    "wrong-pin": "That PIN isn't right. Check it with the host.",
    "throttled": "Too many wrong PINs. Wait a moment and try again.",
    "full": "Ask the host to make room, then try again.",
    "blocked": "The host has removed you from this party.",
    "kicked": "The host disconnected you. You can rejoin in a minute.",
}


class AccessError(ValueError):
    """A PIN or cap the host typed is not usable; the message says why."""


def clean_pin(pin: str | None) -> str | None:
    """The PIN as stored: digits/letters without spaces, or None for "no PIN"."""
    if pin is None:
        return None
    pin = "".join(pin.split())
    if not pin:
        return None
    if len(pin) > MAX_PIN_CHARS or not pin.isalnum() or not pin.isascii():
        raise AccessError(f"A PIN is 1–{MAX_PIN_CHARS} letters or digits.")
    return pin


@dataclass(frozen=True)
class AccessRules:
    """What the coordinator tells every worker (and the front door uses itself)."""

    pin: str | None = None
    max_listeners: int | None = None  # None: no cap
    blocked: tuple[str, ...] = ()  # player ids and (non-loopback) addresses
    kicked: dict[str, float] = field(default_factory=dict)  # player id -> until (wall clock)
    secret: str = ""  # tickets are signed with it; never leaves our processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessRules:
        return cls(
            pin=data.get("pin"),
            max_listeners=data.get("max_listeners"),
            blocked=tuple(data.get("blocked", ())),
            kicked=dict(data.get("kicked", {})),
            secret=data.get("secret", ""),
        )

    def barred(self, client_id: str | None, address: str, now: float | None = None) -> str | None:
        """'blocked' / 'kicked' / None for this phone."""
        if (client_id and client_id in self.blocked) or address in self.blocked:
            return "blocked"
        until = self.kicked.get(client_id or "")
        if until is not None and (now if now is not None else time.time()) < until:
            return "kicked"
        return None

    def full(self, listeners: int) -> bool:
        return self.max_listeners is not None and listeners >= self.max_listeners


def new_secret() -> str:
    return secrets.token_hex(16)


def issue_ticket(secret: str, client_id: str, now: float | None = None) -> str:
    """A URL-safe proof that /api/join admitted `client_id`, valid for TICKET_TTL_S."""
    expiry = int((now if now is not None else time.time()) + TICKET_TTL_S)
    return f"{expiry}-{_sign(secret, client_id, expiry)}"


def ticket_ok(
    secret: str, ticket: str | None, client_id: str | None, now: float | None = None
) -> bool:
    if not secret or not ticket or not client_id:
        return False
    expiry_text, _, mac = ticket.partition("-")
    if not expiry_text.isdigit():
        return False
    expiry = int(expiry_text)
    if expiry < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _sign(secret, client_id, expiry))


def _sign(secret: str, client_id: str, expiry: int) -> str:
    message = f"{client_id}|{expiry}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


class PinGuard:
    """Wrong PINs in a row per address; past WRONG_PINS_IN_A_ROW the address waits."""

    def __init__(self) -> None:
        self._wrong: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._lockouts: dict[str, int] = {}

    def check(
        self, address: str, given: str | None, pin: str, now: float | None = None
    ) -> str | None:
        """None when `given` is the PIN; else 'pin' (none given), 'wrong-pin' or 'throttled'."""
        now = now if now is not None else time.monotonic()
        if self._locked_until.get(address, 0.0) > now:
            return "throttled"
        if not given:
            return "pin"
        if hmac.compare_digest(given.strip().encode(), pin.encode()):
            self._wrong.pop(address, None)
            self._lockouts.pop(address, None)
            return None
        if len(self._wrong) >= TRACKED_ADDRESSES and address not in self._wrong:
            self._wrong.clear()  # rare; only makes the guard kinder for a moment
        streak = self._wrong[address] = self._wrong.get(address, 0) + 1
        if streak >= WRONG_PINS_IN_A_ROW:
            times = self._lockouts[address] = self._lockouts.get(address, 0) + 1
            self._locked_until[address] = now + min(LOCKOUT_S * 2 ** (times - 1), LOCKOUT_MAX_S)
            self._wrong[address] = 0
            return "throttled"
        return "wrong-pin"

    def retry_after(self, address: str, now: float | None = None) -> float:
        now = now if now is not None else time.monotonic()
        return max(0.0, self._locked_until.get(address, 0.0) - now)


def join_verdict(
    rules: AccessRules,
    guard: PinGuard,
    *,
    address: str,
    client_id: str | None,
    pin: str | None,
    listeners: int,
    known: bool,
) -> str | None:
    """Why /api/join refuses this phone (a REASONS key), or None to admit it.

    `known`: the phone is connected already (a reload, a reconnect): PIN and cap changes
    do not apply to it; only the blocklist does.
    """
    barred = rules.barred(client_id, address)
    if barred:
        return barred
    if known:
        return None
    if rules.pin:
        wrong = guard.check(address, pin, rules.pin)
        if wrong:
            return wrong
    if rules.full(listeners):
        return "full"
    return None


def valid_id(client_id: str | None) -> str | None:
    if client_id and len(client_id) <= MAX_ID_CHARS and client_id.isprintable():
        return client_id
    return None
