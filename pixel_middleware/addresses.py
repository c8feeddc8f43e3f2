"""Client IP addresses: which one to believe, and how to truncate it. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

# IPv6 prefix kept for 1, 2, 3 bytes of truncation (as Matomo does for its IPv4 byte counts).
_IPV6_PREFIX = {1: 64, 2: 56, 3: 48}


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str | None:
    """The visitor's address: the socket peer, unless it is a trusted proxy.

    ``X-Forwarded-For`` is read right to left, skipping trusted proxies; the first address that
    is not one is the client. Without trusted proxies the header is ignored: anyone can send it.
    """
    if not trusted or peer is None:
        return peer
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(value: str) -> bool:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(address in network for network in networks)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return None  # a forged or broken header: believe nothing
    return peer


def truncate_ip(value: str | None, zero_bytes: int) -> str | None:
    """Zero the last ``zero_bytes`` (1-3) IPv4 octets, or keep an IPv6 /64, /56 or /48.

    0 keeps no address at all; an unparsable address is dropped.
    """
    if value is None or zero_bytes == 0:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    prefix = 32 - 8 * zero_bytes if address.version == 4 else _IPV6_PREFIX[zero_bytes]
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


def in_networks(value: str | None, networks: Sequence[str]) -> bool:
    """Whether ``value`` is an address inside one of ``networks`` (IPs or CIDR ranges)."""
    if value is None or not networks:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
