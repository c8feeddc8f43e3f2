"""Client IP addresses: which one to believe, and how to truncate it. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

# Prefix kept at each truncation level. IPv4 loses 1-3 octets. An IPv6 /64 is one household's
# network (its own prefix, as stable as the line), so even level 1 keeps no more than a /48, the
# network of a site or customer that Google Analytics' and Matomo's default masking keep; levels 2
# and 3 keep /40 and /32 (a provider's whole allocation).
IPV4_PREFIX = {1: 24, 2: 16, 3: 8}
IPV6_PREFIX = {1: 48, 2: 40, 3: 32}


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
    """The network part of an address at truncation level ``zero_bytes`` (1-3).

    IPv4 keeps /24, /16 or /8 (the last 1-3 octets zeroed); IPv6 keeps /48, /40 or /32. An IPv6
    address that carries a whole IPv4 one in its first 48 bits or as a mapped address (6to4
    ``2002:…``, ``::ffff:a.b.c.d``) is truncated as that IPv4 address: its /48 would keep the
    IPv4 address entire. 0 keeps no address at all; an unparsable address is dropped.
    """
    if value is None or zero_bytes == 0:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address.sixtofour or address
    prefix = (IPV4_PREFIX if address.version == 4 else IPV6_PREFIX)[zero_bytes]
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
