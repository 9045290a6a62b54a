"""Property tests of `requests_app.domain.cidrs`, with stdlib `ipaddress` as oracle."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_app.domain import cidrs

# Modest example counts keep the file fast; no example database, so nothing is written.
PROPERTY = settings(max_examples=200, deadline=None, database=None)

MAX_V4 = 2**32 - 1

# Addresses near the edges of the special ranges, so generated networks often straddle,
# touch or nest inside them rather than landing in the vast public space.
ANCHORS = tuple(
    int(ipaddress.IPv4Address(a))
    for a in (
        "0.0.0.0",
        "9.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.168.0.0",
        "192.168.255.255",
        "192.169.0.0",
        "255.255.255.255",
    )
)


def _network(address: int, prefix: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((address, prefix), strict=False)


@st.composite
def anywhere_networks(draw):
    """Any IPv4 network at all."""
    return _network(draw(st.integers(0, MAX_V4)), draw(st.integers(0, 32)))


@st.composite
def crowded_networks(draw):
    """Networks inside 10.0.0.0/12, so that random pairs overlap often."""
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    return _network(base + draw(st.integers(0, 2**20 - 1)), draw(st.integers(8, 28)))


@st.composite
def boundary_networks(draw):
    """Networks close to a boundary of RFC 1918 or the shared address space."""
    anchor = draw(st.sampled_from(ANCHORS))
    offset = draw(st.integers(-(2**16), 2**16))
    return _network(min(max(anchor + offset, 0), MAX_V4), draw(st.integers(0, 32)))


networks = st.one_of(anywhere_networks(), crowded_networks(), boundary_networks())
cidr_strings = networks.map(str)


# --- overlapping_pairs ----------------------------------------------------------------


@PROPERTY
@given(left=st.lists(cidr_strings, max_size=6), right=st.lists(cidr_strings, max_size=6))
def test_overlapping_pairs_are_exactly_the_pairs_ipaddress_says_overlap(left, right):
    expected = [(a, b) for a in left for b in right if ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))]
    assert cidrs.overlapping_pairs(left, right) == expected


@PROPERTY
@given(left=st.lists(cidr_strings, max_size=5), right=st.lists(cidr_strings, max_size=5))
def test_overlap_is_symmetric(left, right):
    forward = cidrs.overlapping_pairs(left, right)
    backward = cidrs.overlapping_pairs(right, left)
    assert sorted(forward) == sorted((a, b) for b, a in backward)


@PROPERTY
@given(cidr=cidr_strings)
def test_every_block_overlaps_itself(cidr):
    assert cidrs.overlapping_pairs([cidr], [cidr]) == [(cidr, cidr)]


# --- containing_block -----------------------------------------------------------------


def _contains(outer: str, inner: str) -> bool:
    o, i = ipaddress.ip_network(outer), ipaddress.ip_network(inner)
    return int(o.network_address) <= int(i.network_address) and int(i.broadcast_address) <= int(o.broadcast_address)


@PROPERTY
@given(cidr=cidr_strings, blocks=st.lists(cidr_strings, max_size=6))
def test_containing_block_really_contains_or_none_does(cidr, blocks):
    found = cidrs.containing_block(cidr, blocks)
    if found is None:
        assert not any(_contains(block, cidr) for block in blocks)
    else:
        assert found in blocks
        assert _contains(found, cidr)
        # It is the first block, in the given order, that contains the CIDR.
        assert found == next(block for block in blocks if _contains(block, cidr))


@PROPERTY
@given(
    outer=networks,
    extra_bits=st.integers(0, 32),
    blocks=st.lists(cidr_strings, max_size=4),
)
def test_a_subnet_of_a_listed_block_is_always_found(outer, extra_bits, blocks):
    inner = next(outer.subnets(prefixlen_diff=min(extra_bits, 32 - outer.prefixlen)))
    found = cidrs.containing_block(str(inner), [*blocks, str(outer)])
    assert found is not None
    assert _contains(found, str(inner))


# --- addressing_class -----------------------------------------------------------------

PRIVATE_RANGES = (
    ("10.0.0.0", "10.255.255.255"),
    ("172.16.0.0", "172.31.255.255"),
    ("192.168.0.0", "192.168.255.255"),
)
SHARED_RANGE = ("100.64.0.0", "100.127.255.255")


def _within(net: ipaddress.IPv4Network, first: str, last: str) -> bool:
    return int(ipaddress.IPv4Address(first)) <= int(net.network_address) and int(net.broadcast_address) <= int(
        ipaddress.IPv4Address(last)
    )


@PROPERTY
@given(net=networks)
def test_addressing_class_matches_rfc1918_shared_or_public(net):
    if any(_within(net, first, last) for first, last in PRIVATE_RANGES):
        expected = "private"
    elif _within(net, *SHARED_RANGE):
        expected = "shared"
    else:
        expected = "public"
    assert cidrs.addressing_class(str(net)) == expected


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.0.0.0/8", "private"),
        ("10.255.255.255/32", "private"),
        ("172.16.0.0/12", "private"),
        ("172.31.255.0/24", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared"),
        ("100.127.255.255/32", "shared"),
        ("0.0.0.0/0", "public"),
        ("10.0.0.0/7", "public"),
        ("172.32.0.0/16", "public"),
        ("172.0.0.0/8", "public"),
        ("100.0.0.0/8", "public"),
        ("100.128.0.0/10", "public"),
        ("192.169.0.0/16", "public"),
        ("8.8.8.0/24", "public"),
    ],
)
def test_addressing_class_at_the_edges(cidr, expected):
    assert cidrs.addressing_class(cidr) == expected


# --- parse ----------------------------------------------------------------------------


@PROPERTY
@given(net=networks, padding=st.sampled_from(["", " ", "\t", " \n"]))
def test_parse_accepts_every_network_and_round_trips(net, padding):
    text = f"{padding}{net}{padding}"
    assert cidrs.parse(text) == net
    assert cidrs.is_valid(text)


@st.composite
def host_bits_set(draw):
    prefix = draw(st.integers(0, 31))
    host_bits = 32 - prefix
    network_part = draw(st.integers(0, 2**prefix - 1)) << host_bits
    host_part = draw(st.integers(1, 2**host_bits - 1))
    return f"{ipaddress.IPv4Address(network_part | host_part)}/{prefix}"


@PROPERTY
@given(cidr=host_bits_set())
def test_parse_rejects_host_bits_set(cidr):
    with pytest.raises(ValueError, match="has host bits set"):
        cidrs.parse(cidr)
    assert not cidrs.is_valid(cidr)


@PROPERTY
@given(address=st.ip_addresses(v=6), prefix=st.integers(0, 128))
def test_parse_rejects_ipv6(address, prefix):
    cidr = str(ipaddress.IPv6Network((address, prefix), strict=False))
    with pytest.raises(ValueError, match="is not an IPv4 CIDR block"):
        cidrs.parse(cidr)
    assert not cidrs.is_valid(cidr)


NOT_A_NETWORK = "does not appear to be an IPv4 or IPv6 network"


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.1/16", "has host bits set"),
        ("192.168.1.1/24", "has host bits set"),
        ("172.16.0.1/12", "has host bits set"),
        ("fd00::/8", "is not an IPv4 CIDR block"),
        ("::/0", "is not an IPv4 CIDR block"),
        ("10.0.0.0/33", NOT_A_NETWORK),
        ("nonsense", "is not in address/prefix-length form"),
        ("", "is not in address/prefix-length form"),
        ("10.0.0.0/255.0.0.0", "is not in address/prefix-length form"),
    ],
)
def test_parse_rejects_examples(cidr, message):
    with pytest.raises(ValueError, match=message):
        cidrs.parse(cidr)
    assert not cidrs.is_valid(cidr)
