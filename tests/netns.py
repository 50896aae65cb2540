"""Phones on a network of their own, in network namespaces we create.

- phone_host(): one "phone" host joined to this one by a veth pair: traffic crosses a real
  (virtual) link that a test can cut, like Wi-Fi dropping.
- wifi(profile, guests): several guests behind an emulated access point (tests/wifi_air.py):
  delay, jitter, loss, one shared airtime budget, stalls and cuts, per the PROFILES.

Needs root, iproute2 (and ethtool for wifi()); addresses are private to the namespaces we
create (10.213.77.0/30, 10.214.X.0/24).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOST_IP, PHONE_IP = "10.213.77.1", "10.213.77.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def available() -> str | None:
    """None when we can make namespaces here, else why not."""
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


@dataclass
class PhoneHost:
    name: str
    host_if: str
    phone_if: str

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """The phone's network goes away without a word (no FIN, no RST, no ACKs)."""
        _ip("netns", "exec", self.name, "ip", "link", "set", self.phone_if, "down")


@contextmanager
def phone_host() -> Iterator[PhoneHost]:
    tag = uuid.uuid4().hex[:6]
    phone = PhoneHost(f"ps-phone-{tag}", f"psh{tag}", f"psp{tag}")
    _ip("netns", "add", phone.name)
    try:
        _ip("link", "add", phone.host_if, "type", "veth", "peer", "name", phone.phone_if)
        _ip("link", "set", phone.phone_if, "netns", phone.name)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", phone.host_if)
        _ip("link", "set", phone.host_if, "up")
        run = ("netns", "exec", phone.name, "ip")
        _ip(*run, "addr", "add", f"{PHONE_IP}/30", "dev", phone.phone_if)
        _ip(*run, "link", "set", phone.phone_if, "up")
        _ip(*run, "link", "set", "lo", "up")
        yield phone
    finally:
        subprocess.run(["ip", "link", "del", phone.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", phone.name], capture_output=True, timeout=10)


# -- Wi-Fi: a party and its guests on either side of an emulated access point ---------------

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Profile:
    """What the air does to every frame (one way, each direction; see tests/wifi_air.py)."""

    name: str
    delay_ms: float
    jitter_ms: float
    loss_pct: float
    rate_mbit: float  # shared by all guests and both directions, like one AP's airtime
    stall_ms: float = 0.0  # each guest's link now and then delivers nothing for this long
    stall_every_s: float = 0.0  # mean time between one guest's stalls (0: never)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


PROFILES = {
    p.name: p
    for p in (
        Profile("good", delay_ms=5, jitter_ms=2, loss_pct=0, rate_mbit=100),
        Profile("busy", delay_ms=20, jitter_ms=15, loss_pct=1, rate_mbit=30),
        Profile(
            "bad", delay_ms=60, jitter_ms=40, loss_pct=3, rate_mbit=10,
            stall_ms=500, stall_every_s=30,
        ),
    )
}  # fmt: skip


@functools.cache
def wifi_available() -> str | None:
    """None when we can build the emulated Wi-Fi here, else why not (tried once)."""
    if why := available():
        return why
    if shutil.which("ethtool") is None:
        return "ethtool is not installed (offloads must be off for the emulated air)"
    probe = f"ps-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


@dataclass
class Guest:
    """A phone (or several) in a namespace of its own, on one link of the air."""

    index: int  # its port in the air process (1..n)
    name: str  # network namespace
    ip: str

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


class Wifi:
    """The built network: the party's side in this namespace at `host_ip`, the guests in
    namespaces of their own, and the air process between them."""

    def __init__(self, profile: Profile, host_ip: str, guests: list[Guest]) -> None:
        self.profile = profile
        self.host_ip = host_ip
        self.guests = guests
        self.air: subprocess.Popen[str] | None = None

    def _ask(self, **cmd: object) -> Any:
        assert self.air is not None and self.air.stdin and self.air.stdout
        self.air.stdin.write(json.dumps(cmd) + "\n")
        self.air.stdin.flush()
        return json.loads(self.air.stdout.readline() or "null")

    def stall(self, guest: Guest, seconds: float, drop: bool = False) -> None:
        """The guest's link delivers nothing for `seconds`; then what waited in the AP
        arrives, or with `drop` it was lost (TCP retransmits it)."""
        self._ask(cmd="stall", guest=guest.index, ms=seconds * 1000, drop=drop)

    def cut(self, guest: Guest) -> None:
        """The guest's link is gone: no FIN, no RST, nothing."""
        self._ask(cmd="cut", guest=guest.index)

    def stats(self) -> dict[str, Any]:
        return self._ask(cmd="stats")


def _offloads_off(*prefix: str, dev: str) -> None:
    subprocess.run(
        [*prefix, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout
    for _ in range(100):
        third = random.randint(1, 254)
        if f"10.214.{third}." not in used:
            return third
    raise RuntimeError("no free 10.214.x.0/24 subnet")


@contextmanager
def wifi(profile: Profile, guests: int = 1, seed: int = 1) -> Iterator[Wifi]:
    """The party's host at 10.214.X.1 here; guest i at 10.214.X.(10+i) in its own namespace;
    the air (tests/wifi_air.py) in a namespace between them. Everything is removed after."""
    tag = uuid.uuid4().hex[:5]
    net = _free_subnet()
    air_ns, host_if, air_up = f"ps-air-{tag}", f"psw{tag}h", f"psw{tag}a"
    made_ns: list[str] = [air_ns]
    wifi_net = Wifi(profile, f"10.214.{net}.1", [])
    try:
        _ip("netns", "add", air_ns)
        in_air = ("netns", "exec", air_ns, "ip")
        _ip("link", "add", host_if, "type", "veth", "peer", "name", air_up)
        _ip("link", "set", air_up, "netns", air_ns)
        _ip("addr", "add", f"{wifi_net.host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip(*in_air, "link", "set", air_up, "up")
        _offloads_off(dev=host_if)
        _offloads_off("ip", "netns", "exec", air_ns, dev=air_up)
        air_ports = [air_up]
        for i in range(1, guests + 1):
            guest = Guest(i, f"ps-guest-{tag}-{i}", f"10.214.{net}.{10 + i}")
            guest_if, air_if = f"psw{tag}g{i}", f"psw{tag}x{i}"
            _ip("netns", "add", guest.name)
            made_ns.append(guest.name)
            _ip("link", "add", guest_if, "type", "veth", "peer", "name", air_if)
            _ip("link", "set", air_if, "netns", air_ns)
            _ip("link", "set", guest_if, "netns", guest.name)
            in_guest = ("netns", "exec", guest.name, "ip")
            _ip(*in_guest, "addr", "add", f"{guest.ip}/24", "dev", guest_if)
            _ip(*in_guest, "link", "set", guest_if, "up")
            _ip(*in_guest, "link", "set", "lo", "up")
            _ip(*in_air, "link", "set", air_if, "up")
            _offloads_off("ip", "netns", "exec", guest.name, dev=guest_if)
            _offloads_off("ip", "netns", "exec", air_ns, dev=air_if)
            air_ports.append(air_if)
            wifi_net.guests.append(guest)
        wifi_net.air = subprocess.Popen(
            [
                "ip", "netns", "exec", air_ns, sys.executable, "-m", "tests.wifi_air",
                "--ports", ",".join(air_ports), "--profile", profile.to_json(),
                "--seed", str(seed),
            ],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert wifi_net.air.stdout is not None
        ready = wifi_net.air.stdout.readline()
        if '"ready"' not in ready:
            raise RuntimeError(f"the air process did not start: {ready!r}")
        yield wifi_net
    finally:
        if wifi_net.air is not None:
            with contextlib.suppress(Exception):
                wifi_net._ask(cmd="quit")
            try:
                wifi_net.air.wait(5)
            except subprocess.TimeoutExpired:
                wifi_net.air.kill()
                wifi_net.air.wait(5)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        for name in made_ns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
