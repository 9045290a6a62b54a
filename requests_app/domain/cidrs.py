"""CIDR arithmetic on the stdlib's ipaddress, the single source of truth for address rules."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network

RFC1918 = tuple(Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
SHARED_ADDRESS_SPACE = Network("100.64.0.0/10")


@functools.lru_cache(maxsize=65536)
def parse(cidr: str) -> Network:
    """Parse a CIDR strictly: host bits must be zero, as AWS requires for routes.

    Cached: a hub's tables hold hundreds of routes, each compared with every destination of a
    request, and the parsed network is immutable.
    """
    text = cidr.strip()
    _, _, prefix = text.partition("/")
    if not prefix.isdigit():
        # ipaddress also takes netmask forms (10.0.0.0/255.0.0.0); AWS and our messages do not.
        raise ValueError(f"{cidr} is not in address/prefix-length form")
    network = ipaddress.ip_network(text, strict=True)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"{cidr} is not an IPv4 CIDR block")
    return network


def canonical(cidr: str) -> str:
    """The one way the portal writes a block (`10.0.0.0/016` and ` 10.0.0.0/16 ` are `10.0.0.0/16`):
    what it stores, compares and sends to AWS. Text that is not a block is returned as it is, for
    the checks to refuse by name."""
    try:
        return str(parse(cidr))
    except ValueError:
        return cidr


def is_valid(cidr: str) -> bool:
    try:
        parse(cidr)
    except ValueError:
        return False
    return True


def overlapping_pairs(left: Iterable[str], right: Iterable[str]) -> list[tuple[str, str]]:
    """Every (left, right) pair of blocks that share at least one address."""
    right_nets = [(c, parse(c)) for c in right]
    pairs: list[tuple[str, str]] = []
    for lc in left:
        ln = parse(lc)
        pairs.extend((lc, rc) for rc, rn in right_nets if ln.overlaps(rn))
    return pairs


def containing_block(cidr: str, blocks: Iterable[str]) -> str | None:
    """The block among `blocks` that wholly contains `cidr`, if any."""
    net = parse(cidr)
    for block in blocks:
        if net.subnet_of(parse(block)):
            return block
    return None


def addressing_class(cidr: str) -> str:
    """'private' (RFC 1918), 'shared' (100.64.0.0/10, carrier-grade NAT) or 'public'."""
    net = parse(cidr)
    if any(net.subnet_of(block) for block in RFC1918):
        return "private"
    if net.subnet_of(SHARED_ADDRESS_SPACE):
        return "shared"
    return "public"


def address_range(cidr: str) -> tuple[int, int]:
    """The first and last address of a block, as integers."""
    net = parse(cidr)
    return int(net.network_address), int(net.broadcast_address)
