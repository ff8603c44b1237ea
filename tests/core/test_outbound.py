"""RELIABILITY test 23's address rule: every forbidden class, wrapped forms, the allow-list."""

from __future__ import annotations

import ipaddress

import pytest

from hmt.core.outbound import parse_nets, refusal, refused

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # carrier-grade NAT
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("168.63.129.16", "metadata"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 (an address judged, not bound)
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "private"),  # reserved
    # IPv4 inside IPv6: judged by the address inside.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize(("text", "reason"), FORBIDDEN)
def test_every_forbidden_class_is_refused(text: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(text)) == reason


@pytest.mark.parametrize("text", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


def test_one_forbidden_address_among_public_ones_refuses_the_name() -> None:
    assert refused(["1.1.1.1", "10.0.0.7"]) == ("10.0.0.7", "private")
    assert refused(["1.1.1.1", "2606:4700:4700::1111"]) is None


def test_the_operator_allows_a_range_and_nothing_else() -> None:
    allowed = parse_nets("127.0.0.1/32, 10.1.0.0/16")
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("10.1.200.3"), allowed) is None
    assert refusal(ipaddress.ip_address("127.0.0.2"), allowed) == "loopback"
    assert refusal(ipaddress.ip_address("10.2.0.1"), allowed) == "private"
    assert refusal(ipaddress.ip_address("169.254.169.254"), allowed) == "metadata"


def test_a_bad_range_is_named() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        parse_nets("127.0.0.1/32,not-a-net")
    assert parse_nets(" , ") == ()
