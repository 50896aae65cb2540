"""The air between a party and its guests: a Wi-Fi link emulated in user space.

Runs inside the "air" network namespace that tests/netns.py builds, holding one end of every
veth pair: port 0 leads to the party, ports 1..n to the guests. It forwards Ethernet frames
between them (a tiny learning bridge over AF_PACKET sockets) and on the way applies what a
busy access point does to them:

- one-way delay with jitter (uniform, delay +- jitter, like `tc netem delay D J`), in order
  per guest and direction: 802.11 retries delay frames but deliver them in sequence;
- random loss (each frame, both directions);
- one shared airtime budget (bit/s) for all guests and both directions, with a bounded AP
  queue (tail drop past MAX_QUEUE_S): the guests compete for it like for one AP's airtime;
- stalls: a guest's link delivers nothing for a while; its frames wait in the AP (as with
  interference or a power-save hiccup) and then arrive in a burst, or (`drop`) are lost, as
  when the phone briefly loses the AP: then TCP's retransmission timer brings them back;
- cuts: a guest's link is gone, every frame is dropped.

Why user space: these machines' kernel has no netem (only tbf/htb/pfifo), so delay, jitter
and loss cannot be had from `tc`. Offloads must be off on every veth (tests/netns.py does it)
so that frames are real-sized and checksummed.

Control: one JSON command per stdin line; one JSON answer per stdout line. "ready" first.
    {"cmd": "stall", "guest": 1, "ms": 1000, "drop": false}   {"cmd": "cut", "guest": 1}
    {"cmd": "stats"}                            {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import random
import socket
import sys
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
MAX_QUEUE_S = 0.5  # AP buffer, in time at the shared rate: deeper than this is tail-dropped
MAX_HOLD_FRAMES = 4000  # frames a stalled guest may have waiting in the AP
RECV_BUFFER = 8 * 1024 * 1024


@dataclass
class Link:
    """One guest's side of the air (index >= 1); index 0 is the party's wired side."""

    index: int
    ifname: str
    sock: socket.socket
    stalled_until: float = 0.0
    stall_drops: bool = False  # frames sent into the stall are lost, not held
    next_stall: float = 0.0
    cut: bool = False
    last_out: dict[str, float] = field(default_factory=lambda: {"down": 0.0, "up": 0.0})
    held: int = 0
    bytes_down: int = 0  # frames delivered to this guest (wire bytes, Ethernet included)
    bytes_up: int = 0
    dropped: int = 0
    stalls: int = 0


class Air:
    def __init__(self, ifnames: list[str], profile: dict[str, float], seed: int) -> None:
        self.profile = profile
        self.random = random.Random(seed)
        self.links = [Link(i, name, self._open(name)) for i, name in enumerate(ifnames)]
        self.macs: dict[bytes, Link] = {}  # guest MAC -> its link
        self.air_free = 0.0  # when the shared airtime is next free
        self.queue: list[tuple[float, int, Link, Link, bytes]] = []
        self.seq = itertools.count()
        self.wake = asyncio.Event()
        self.queue_drops = 0
        now = time.monotonic()
        for link in self.links[1:]:
            link.next_stall = now + self._stall_gap()

    @staticmethod
    def _open(ifname: str) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECV_BUFFER)
        sock.bind((ifname, 0))
        sock.setblocking(False)
        return sock

    def _stall_gap(self) -> float:
        every = self.profile.get("stall_every_s", 0.0)
        return self.random.expovariate(1 / every) if every else float("inf")

    # -- the path of one frame ---------------------------------------------------------------
    def on_readable(self, link: Link) -> None:
        while True:
            try:
                frame, addr = link.sock.recvfrom(65536)
            except BlockingIOError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # our own transmission, seen on the way out
            if link.index == 0:
                self._from_party(frame)
            else:
                self.macs[frame[6:12]] = link
                self._schedule(frame, link, self.links[0], link, "up")

    def _from_party(self, frame: bytes) -> None:
        dst = frame[0:6]
        if dst[0] & 1:  # broadcast/multicast (ARP): every guest
            for guest in self.links[1:]:
                self._schedule(frame, self.links[0], guest, guest, "down")
        elif (guest := self.macs.get(dst)) is not None:
            self._schedule(frame, self.links[0], guest, guest, "down")

    def _schedule(self, frame: bytes, src: Link, dst: Link, guest: Link, way: str) -> None:
        p, now = self.profile, time.monotonic()
        self._maybe_stall(guest, now)
        dropped_in_stall = guest.stall_drops and guest.stalled_until > now
        if guest.cut or dropped_in_stall or self.random.random() < p["loss_pct"] / 100:
            guest.dropped += 1
            return
        airtime = len(frame) * 8 / (p["rate_mbit"] * 1e6)
        start = max(now, self.air_free)
        if start - now > MAX_QUEUE_S:
            self.queue_drops += 1
            guest.dropped += 1
            return
        self.air_free = start + airtime
        delay = max(0.0, p["delay_ms"] + self.random.uniform(-1, 1) * p["jitter_ms"]) / 1000
        out = max(self.air_free + delay, guest.last_out[way], guest.stalled_until)
        if guest.stalled_until > now:
            if guest.held >= MAX_HOLD_FRAMES:
                guest.dropped += 1
                return
            guest.held += 1
        guest.last_out[way] = out
        heapq.heappush(self.queue, (out, next(self.seq), src, dst, frame))
        self.wake.set()

    def _maybe_stall(self, guest: Link, now: float) -> None:
        if now < guest.next_stall:
            return
        self.stall(guest.index, self.profile.get("stall_ms", 0.0) / 1000)
        guest.next_stall = now + self._stall_gap()

    def stall(self, index: int, seconds: float, drop: bool = False) -> None:
        guest = self.links[index]
        guest.stalled_until = max(guest.stalled_until, time.monotonic() + seconds)
        guest.stall_drops = drop
        guest.held = 0
        guest.stalls += 1

    async def deliver(self) -> None:
        while True:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, src, dst, frame = heapq.heappop(self.queue)
                guest = dst if dst.index else src
                with contextlib.suppress(BlockingIOError, OSError):
                    dst.sock.send(frame)
                    if dst.index:
                        guest.bytes_down += len(frame)
                    else:
                        guest.bytes_up += len(frame)
                if guest.held:
                    guest.held -= 1
            self.wake.clear()
            timeout = self.queue[0][0] - time.monotonic() if self.queue else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(0.0, timeout))

    def stats(self) -> dict[str, object]:
        return {
            "queue_drops": self.queue_drops,
            "guests": [
                {
                    "ifname": g.ifname,
                    "bytes_down": g.bytes_down,
                    "bytes_up": g.bytes_up,
                    "dropped": g.dropped,
                    "stalls": g.stalls,
                }
                for g in self.links[1:]
            ],
        }


async def serve(air: Air) -> None:
    loop = asyncio.get_running_loop()
    for link in air.links:
        loop.add_reader(link.sock, air.on_readable, link)
    deliver = asyncio.create_task(air.deliver(), name="deliver")
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            match cmd["cmd"]:
                case "stall":
                    air.stall(int(cmd["guest"]), float(cmd["ms"]) / 1000, bool(cmd.get("drop")))
                    answer: object = {"ok": True}
                case "cut":
                    air.links[int(cmd["guest"])].cut = True
                    answer = {"ok": True}
                case "stats":
                    answer = air.stats()
                case "quit":
                    break
                case _:
                    answer = {"error": f"unknown command {cmd['cmd']}"}
            print(json.dumps(answer), flush=True)
    finally:
        deliver.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", required=True, help="party port, then guest ports (a,b,c)")
    parser.add_argument("--profile", required=True, help="JSON: delay_ms, jitter_ms, ...")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    air = Air(args.ports.split(","), json.loads(args.profile), args.seed)
    asyncio.run(serve(air))


if __name__ == "__main__":
    main()
