"""IP truncation for anonymous hits: what each level keeps, and what a stored Hit may hold."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixel_middleware.addresses import truncate_ip
from pixel_middleware.sinks import Hit
from pixel_middleware.sinks.base import is_truncated_ip

from .helpers import TRACK_ID

ADDRESS = "2a02:8070:a1b2:c3d4:1111:2222:3333:4444"


@pytest.mark.parametrize(
    ("level", "expected"),
    [(1, "2a02:8070:a1b2::"), (2, "2a02:8070:a100::"), (3, "2a02:8070::")],
)
def test_ipv6_levels_keep_a_48_a_40_and_a_32(level: int, expected: str) -> None:
    assert truncate_ip(ADDRESS, level) == expected


def test_level_1_never_keeps_a_households_64() -> None:
    """Two households of the same /48 (a site, a small provider block) look the same."""
    one = truncate_ip("2a02:8070:a1b2:0001::1", 1)
    other = truncate_ip("2a02:8070:a1b2:ffff:abcd::9", 1)
    assert one == other == "2a02:8070:a1b2::"


@pytest.mark.parametrize(
    ("address", "level", "expected"),
    [
        ("::ffff:198.51.100.77", 1, "198.51.100.0"),  # mapped: truncated as the IPv4 it is
        ("::ffff:198.51.100.77", 3, "198.0.0.0"),
        ("2002:c633:644d::1", 1, "198.51.100.0"),  # 6to4: its /48 is the whole IPv4 address
        ("198.51.100.77", 1, "198.51.100.0"),
        ("198.51.100.77", 0, None),
        ("fe80::1%eth0", 1, "fe80::"),
    ],
)
def test_addresses_carrying_ipv4(address: str, level: int, expected: str | None) -> None:
    assert truncate_ip(address, level) == expected


def anonymous(ip: str) -> Hit:
    return Hit(received_at=0, track_id=TRACK_ID, anonymous=True, query="p=600,x&nc=1", ip=ip)


@pytest.mark.parametrize(
    "ip",
    [
        "2a02:8070:a1b2:c3d4::",  # the old level 1: a /64, one household
        "2a02:8070:a1b2:0:1::",
        "::ffff:198.51.100.77",
        "2002:c633:644d::",
        "198.51.100.7",
    ],
)
def test_an_anonymous_hit_refuses_an_address_kept_finer_than_level_1(ip: str) -> None:
    assert not is_truncated_ip(ip)
    with pytest.raises(ValueError, match="truncated"):
        anonymous(ip)


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(min_value=1, max_value=3),
)
def test_every_truncated_address_may_be_stored_as_anonymous(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, level: int
) -> None:
    truncated = truncate_ip(str(address), level)
    assert truncated is not None and is_truncated_ip(truncated)
    anonymous(truncated)  # the Hit accepts what the truncation makes
    kept = ipaddress.ip_address(truncated)
    if isinstance(kept, ipaddress.IPv6Address):
        assert int(kept) & ((1 << 80) - 1) == 0  # at most a /48
