"""A second "phone" host in a network namespace of our own, joined to this one by a veth
pair: traffic crosses a real (virtual) network link that a test can cut, like Wi-Fi dropping.
Needs root and iproute2; addresses are private to the namespace pair we create."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
