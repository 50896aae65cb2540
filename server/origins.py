"""Which `Origin` a WebSocket to the party may come from (see `LocalOrigins`)."""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import ifaddr

ADDRESSES_REFRESH_S = 30.0  # re-read this machine's addresses this often
ADDRESSES_MISS_REFRESH_S = 2.0  # ...or this often while origins do not match them


class LocalOrigins:
    """Which `Origin` a WebSocket may come from: the party's own pages.

    The page is served by the front door and by every worker, to phones that reach this
    machine by any of its addresses or by a name. So an origin is ours when its port is one
    of the party's ports and its host is one of this machine's addresses or names, the QR
    code's host, or the host the request itself was sent to (a name we cannot know, e.g.
    the router's DNS name for this machine). A page on any other site has its own origin and
    is refused: that is the attack (a guest's browser used against the party). Left open:
    DNS rebinding from a page served on a party port, which gains one listener slot, bounded
    like any other. Native Sendspin clients send no `Origin` and are allowed: browsers always
    send one on a WebSocket.
    """

    def __init__(self) -> None:
        self._hosts: set[str] = set()
        self._read_at = -ADDRESSES_REFRESH_S

    def _hosts_read_within(self, max_age_s: float) -> set[str]:
        now = time.monotonic()
        if now - self._read_at < max_age_s:
            return self._hosts
        self._read_at = now
        hosts = {"localhost", "127.0.0.1", "::1"}
        name = socket.gethostname().lower()
        hosts |= {name, f"{name}.local", name.split(".")[0]}
        try:
            for adapter in ifaddr.get_adapters():
                for ip in adapter.ips:
                    addr = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                    hosts.add(str(ipaddress.ip_address(addr.split("%")[0])))
        except (OSError, ValueError):
            pass
        self._hosts = hosts
        return hosts

    def allowed(self, origin: str | None, ports: set[int], extra_hosts: set[str]) -> bool:
        if origin is None:
            return True  # a native client, not a browser
        try:
            url = urlsplit(origin)
            host, port = (url.hostname or "").lower(), url.port
        except ValueError:
            return False
        if url.scheme not in ("http", "https") or port not in ports:
            return False
        if host in extra_hosts or host in self._hosts_read_within(ADDRESSES_REFRESH_S):
            return True
        # A new address (DHCP, another network)? Re-read, but not for every stranger.
        return host in self._hosts_read_within(ADDRESSES_MISS_REFRESH_S)


def party_ports_and_hosts(
    status: dict[str, Any], own_port: int | None
) -> tuple[set[int], set[str]]:
    """The party's ports and public host, from its public status."""
    ports = {w["port"] for w in status.get("workers") or () if isinstance(w.get("port"), int)}
    if own_port:
        ports.add(own_port)
    hosts = set()
    if status.get("url"):
        url = urlsplit(status["url"])
        if url.port:
            ports.add(url.port)
        if url.hostname:
            hosts.add(url.hostname.lower())
    return ports, hosts
