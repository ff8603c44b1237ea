"""Where a user-supplied delivery URL may point (RELIABILITY test 23, SSRF).

Notification URLs are user input: without a rule, one pointed at the engine's
own host, the private network or a cloud metadata service would make hmt a
proxy into places only it can reach. An address is refused unless it is a
public unicast address, or the operator allowed a range containing it
(HMT_NOTIFY_ALLOW_NETS). IPv4 addresses wrapped in IPv6 (mapped, NAT64, 6to4,
Teredo) are judged by the IPv4 address inside, so a wrapper cannot smuggle one.

Pure: the caller resolves the host and passes every address it got.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services: the link-local and private ones are refused by class
# anyway; Azure's wire server is a public address, so it is named here.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_nets(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDR ranges ("127.0.0.1/32, 10.1.0.0/16"); ValueError naming a bad one."""
    nets = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an address range: {item!r}") from None
    return tuple(nets)


def _inner(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries, if it carries one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why `address` may not be reached ("loopback", "private", ...), or None if it may."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    inner = _inner(address)
    if inner is not address and any(
        inner.version == net.version and inner in net for net in allowed
    ):
        return None
    for candidate in (inner, address):  # the wrapped address names the class
        reason = _class(candidate)
        if reason is not None:
            return reason
    return None


def _class(address: Address) -> str | None:
    if address in METADATA:
        return "metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return None


def refused(addresses: Iterable[str], allowed: Sequence[Network] = ()) -> tuple[str, str] | None:
    """The first (address, reason) of `addresses` that may not be reached, or None.

    Every address is judged: a name resolving to one public and one private
    address is refused, since the connection may use either.
    """
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
        reason = refusal(address, allowed)
        if reason is not None:
            return text, reason
    return None
