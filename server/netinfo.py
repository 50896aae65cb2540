"""The address phones should use, and free ports to serve on.

Addresses come from the interface list (ifaddr), so finding them sends no packets.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import ifaddr

from server.config import PartyConfig

NO_LAN_MESSAGE = (
    "This computer is not connected to a network: phones cannot join until it is on the "
    "same Wi-Fi or LAN. Showing a local address for now."
)


def _candidates() -> list[ipaddress.IPv4Address]:
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue
            addr = ipaddress.IPv4Address(ip.ip)
            if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
                continue
            found.append(addr)
    return found


def lan_address() -> tuple[str, str | None]:
    """(address, warning): the best private IPv4 address, or 127.0.0.1 and why."""
    try:
        addrs = _candidates()
    except OSError:
        addrs = []
    private = [a for a in addrs if a.is_private]

    def rank(a: ipaddress.IPv4Address) -> int:
        # Home Wi-Fi first; container/VPN-style ranges last.
        text = str(a)
        return 0 if text.startswith("192.168.") else 1 if text.startswith("10.") else 2

    best = sorted(private, key=rank) or addrs
    if not best:
        return "127.0.0.1", NO_LAN_MESSAGE
    return str(best[0]), None


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port right now (same rules aiohttp uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host if host not in ("", "0.0.0.0") else "0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port_block(host: str, base: int, count: int, attempts: int = 20) -> int | None:
    """First base port >= `base` such that base..base+count-1 are all free."""
    port = base
    for _ in range(attempts):
        if port + count > 65535:
            return None
        if all(port_free(host, p) for p in range(port, port + count)):
            return port
        port += count
    return None


def claim_address(cfg: PartyConfig) -> tuple[int | None, str, list[str]]:
    """(front door port or None if no block is free, the party URL, warnings for the host).

    The controller and the tray call it too, before anything runs, so the QR code shows the
    moment Start is pressed; the coordinator calls it again and has the last word."""
    warnings = []
    base = free_port_block(cfg.host, cfg.port, cfg.workers + 1)
    if base is not None and base != cfg.port:
        warnings.append(
            f"Port {cfg.port} is in use by another program; using port {base} instead."
        )
    host, lan_warning = (cfg.public_host, None) if cfg.public_host else lan_address()
    if lan_warning:
        warnings.append(lan_warning)
    return base, f"http://{host}:{base or cfg.port}/", warnings
