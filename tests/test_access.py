"""Access control (server/access.py): the rules alone, then enforced by a real party on
/api/join and on a direct WebSocket, with a real client's audio as proof of admission."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from server.access import (
    LOCKOUT_S,
    WRONG_PINS_IN_A_ROW,
    AccessError,
    AccessRules,
    PinGuard,
    clean_pin,
    issue_ticket,
    join_verdict,
    ticket_ok,
)
from tests.attacks import RawPlayer, absurd_hello
from tests.conftest import front_url
from tests.helpers import eventually

PIN = "2468"
PCM = [{"codec": "pcm", "sample_rate": 48000, "channels": 2, "bit_depth": 16}]


def test_twenty_wrong_pins_in_a_row_lock_the_address_out_and_a_right_pin_resets() -> None:
    guard = PinGuard()
    for _ in range(WRONG_PINS_IN_A_ROW - 1):
        assert guard.check("10.0.0.9", "0000", PIN, now=0.0) == "wrong-pin"
    assert guard.check("10.0.0.9", PIN, PIN, now=0.0) is None  # a right one clears the streak
    for _ in range(WRONG_PINS_IN_A_ROW - 1):
        guard.check("10.0.0.9", "0000", PIN, now=0.0)
    assert guard.check("10.0.0.9", "0000", PIN, now=0.0) == "throttled"
    assert guard.check("10.0.0.9", PIN, PIN, now=1.0) == "throttled"  # even the right one
    assert guard.check("10.0.0.8", PIN, PIN, now=1.0) is None  # others are not affected
    assert guard.check("10.0.0.9", PIN, PIN, now=LOCKOUT_S + 0.1) is None


def test_tickets_are_bound_to_one_id_and_expire() -> None:
    ticket = issue_ticket("s3cret", "guest-a", now=1000.0)
    assert ticket_ok("s3cret", ticket, "guest-a", now=1001.0)
    assert not ticket_ok("s3cret", ticket, "guest-b", now=1001.0)
    assert not ticket_ok("other", ticket, "guest-a", now=1001.0)
    assert not ticket_ok("s3cret", ticket, "guest-a", now=1000.0 + 3600)
    assert not ticket_ok("s3cret", "junk", "guest-a", now=1001.0)


def test_existing_listeners_keep_their_place_whatever_the_settings() -> None:
    rules = AccessRules(pin=PIN, max_listeners=1, blocked=("guest-x",), secret="s")
    verdict: dict[str, Any] = {"address": "10.0.0.2", "listeners": 1}
    guard = PinGuard()
    assert join_verdict(rules, guard, client_id="a", pin=None, known=True, **verdict) is None
    assert join_verdict(rules, guard, client_id="b", pin=None, known=False, **verdict) == "pin"
    assert join_verdict(rules, guard, client_id="b", pin=PIN, known=False, **verdict) == "full"
    assert join_verdict(rules, guard, client_id="guest-x", pin=PIN, known=True, **verdict) == (
        "blocked"
    )
    assert clean_pin(" 24 68 ") == PIN and clean_pin("") is None
    with pytest.raises(AccessError):
        clean_pin("12;--")


async def join(url: str, *, local: str = "127.0.0.1", **query: str) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/api/join", params=query) as resp,
    ):
        return resp.status, await resp.json()


async def get_status(url: str, path: str, *, local: str = "127.0.0.1") -> int:
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}{path}") as resp,
    ):
        return resp.status


async def get_body(
    url: str, path: str, *, local: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> Any:
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}{path}", headers=headers) as resp,
    ):
        return await resp.json()


def muted(p: RawPlayer) -> bool:
    return any(
        m.get("type") == "server/command"
        and m["payload"].get("player", {}).get("command") == "mute"
        and m["payload"]["player"].get("mute") is True
        for m in p.messages
    )


async def player(port: int, client_id: str, ticket: str | None = None) -> RawPlayer:
    path = f"/t/{ticket}/sendspin" if ticket else "/sendspin"
    hello = absurd_hello(client_id, name="Test phone", formats=PCM)
    return await RawPlayer(f"ws://127.0.0.1:{port}{path}", hello).start()


async def test_pin_cap_and_block_are_enforced_by_the_server(start_party) -> None:
    async with start_party(workers=1, pin=PIN, max_listeners=2) as party:
        base = front_url(party)
        port = party.status.workers[0]["port"]
        players: list[RawPlayer] = []
        try:
            code, body = await join(base, id="guest-a")
            assert (code, body["reason"]) == (403, "pin")
            # A direct WebSocket, skipping /api/join, is refused by the worker itself.
            sneaky = await player(port, "guest-sneaky")
            players.append(sneaky)
            assert await sneaky.closed(5.0) and "PIN" in sneaky.close_reason
            assert sneaky.audio_frames == 0

            code, body = await join(base, id="guest-a", pin=PIN)
            assert code == 200 and body["ticket"]
            # A ticket is good for its own id only.
            borrowed = await player(port, "guest-z", body["ticket"])
            players.append(borrowed)
            assert await borrowed.closed(5.0)
            a = await player(port, "guest-a", body["ticket"])
            players.append(a)
            await eventually(lambda: a.audio_frames > 5, what="audio for the right PIN")

            # Guessing: 20 wrong in a row from one address, then even the right PIN waits.
            guesser = "127.0.3.7"
            codes = [
                (await join(base, local=guesser, id="guest-g", pin=f"{n:04d}"))[0]
                for n in range(WRONG_PINS_IN_A_ROW)
            ]
            assert codes[:-1] == [403] * (WRONG_PINS_IN_A_ROW - 1) and codes[-1] == 429
            assert (await join(base, local=guesser, id="guest-g", pin=PIN))[0] == 429

            _, body = await join(base, id="guest-b", pin=PIN)
            b = await player(port, "guest-b", body["ticket"])
            players.append(b)
            await eventually(lambda: b.audio_frames > 5, what="audio for the second phone")
            await eventually(lambda: party.status.listeners == 2, what="two listeners")
            code, body = await join(base, id="guest-c", pin=PIN)
            assert (code, body["reason"]) == (403, "full")

            # The per-phone view is for the host itself, never for a phone (nor a rebound page).
            await eventually(lambda: len(party.status.roster) == 2, what="both phones' rows")
            host_view = await get_body(base, "/api/status?listeners")
            assert {r["id"] for r in host_view["roster"]} == {"guest-a", "guest-b"}
            assert host_view["access"] == {"pin": PIN, "max_listeners": 2}
            for seen in (
                await get_body(base, "/api/status?listeners", local="127.0.3.9"),
                await get_body(base, "/api/status?listeners", headers={"Host": "evil.test"}),
                await get_body(base, "/api/status"),
            ):
                assert "roster" not in seen and "access" not in seen and PIN not in str(seen)

            # The host mutes guest-b: a Sendspin player command to that phone alone.
            party.act_on_listener(0, "guest-b", "mute")
            await eventually(lambda: muted(b), what="a mute command to guest-b")
            assert not muted(a)
            # A page's report about itself counts only from its own address.
            me = f"http://127.0.0.1:{port}"
            assert await get_status(me, "/api/me?id=guest-b&state=background") == 200
            assert await get_status(me, "/api/me?id=guest-b", local="127.0.3.9") == 404
            await eventually(
                lambda: (
                    {r["id"]: r["state"] for r in party.status.roster}.get("guest-b")
                    == "background"
                ),
                what="the page's own state in the roster",
            )

            # The host blocks guest-a: dropped now, refused later; guest-b plays on.
            party.act_on_listener(0, "guest-a", "block")
            assert await a.closed(5.0)
            code, body = await join(base, id="guest-a", pin=PIN)
            assert (code, body["reason"]) == (403, "blocked")
            frames = b.audio_frames
            await eventually(lambda: b.audio_frames > frames + 5, what="guest-b still playing")
            code, body = await join(base, id="guest-c", pin=PIN)
            assert code == 200, body  # guest-a's place is free again

            # A new PIN is for phones still to come: guest-b plays on and may rejoin as is.
            party.set_access("1357", None)
            await eventually(
                lambda: party.status.access.get("pin") == "1357", what="the new PIN applied"
            )
            assert (await join(base, id="guest-d", pin=PIN))[1]["reason"] == "wrong-pin"
            assert (await join(base, id="guest-d", pin="1357"))[0] == 200
            assert (await join(base, id="guest-b"))[0] == 200
            frames = b.audio_frames
            await eventually(lambda: b.audio_frames > frames + 5, what="guest-b untouched")
            assert not await b.closed(0.1)
        finally:
            for p in players:
                await p.stop()


def test_a_busy_partys_rows_fit_one_link_frame() -> None:
    """The rows are the payload, not the 64 KiB JSON header (which 340 rows once broke)."""
    from server.ipc import MAX_HEADER, MAX_PAYLOAD
    from server.listeners import MAX_PANEL_ROWS
    from server.messages import Roster, decode, encode

    row = {
        "id": "x" * 43, "name": "N" * 64, "sync_ms": 12.5, "address": "192.168.100.200",
        "codec": "flac", "kbps": 480, "state": "reconnecting", "since": 1796014153.6227872,
        "worker": 15, "muted": False, "offset_ms": 250,
    }  # fmt: skip
    rows = [row] * MAX_PANEL_ROWS
    header, payload = encode(Roster.of(rows))
    assert len(header) < MAX_HEADER and len(payload) < MAX_PAYLOAD
    assert decode(header, payload).decoded() == rows
