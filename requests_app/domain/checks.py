"""Pre-flight checks: every rule of VPC peering, decided before AWS is touched.

The same function serves the API's create and preflight endpoints and the HTML form, so a rule
is written once. Input is plain data (see `CheckInput`); the caller gathers it from the ORM.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from requests_app.domain import cidrs


class CheckStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class CheckDict(TypedDict):
    """A check as JSON: stored on a request (`checks`), in the API's answers and on the pages."""

    code: str
    status: str  # a CheckStatus value
    detail: str
    attr: str | None  # the input field at fault, if any


@dataclass(frozen=True)
class CheckResult:
    code: str
    status: CheckStatus
    detail: str
    attr: str | None = None

    def as_dict(self) -> CheckDict:
        return {"code": self.code, "status": str(self.status), "detail": self.detail, "attr": self.attr}


@dataclass(frozen=True)
class RouteFacts:
    destination: str
    target: str  # e.g. "local", "pcx-…", "igw-…", "nat-…"; "" for a claim (no connection yet)
    # Whose addresses these are, when the portal knows: its request, or a connection seen in AWS.
    owner: str = ""
    # A route the portal has not made yet: "pending" (its request waits for approval: it only
    # warns) or "approved" (approved or provisioning: as good as made). "" for a route in AWS.
    claim: str = ""
    blackhole: bool = False  # its target is gone, but it still holds the destination
    # The VPC at the other end of the peering it targets, when known.
    peer_vpc_id: str = ""

    @property
    def described_target(self) -> str:
        if self.claim:
            return f"the peering of {self.owner}" if self.owner else "a planned peering"
        shown = f"{self.target} (blackhole)" if self.blackhole else self.target
        return f"{shown} ({self.owner})" if self.owner else shown


# Targets that carry traffic onwards rather than owning addresses: a broader route to one of
# them is overridden by a narrower peering route (longest prefix), which is what its owner meant.
GATEWAY_PREFIXES = ("igw-", "nat-", "tgw-", "vgw-", "eigw-", "cagw-", "lgw-")


def is_gateway(target: str) -> bool:
    return target.startswith(GATEWAY_PREFIXES)


@dataclass(frozen=True)
class RouteTableFacts:
    route_table_id: str
    name: str
    is_main: bool
    routes: tuple[RouteFacts, ...] = ()


@dataclass(frozen=True)
class VpcFacts:
    vpc_id: str
    name: str
    account_id: str
    region: str
    cidrs: tuple[str, ...]
    route_tables: tuple[RouteTableFacts, ...] = ()
    dns_hostnames: bool = True
    dns_support: bool = True
    has_owners: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.vpc_id})" if self.name and self.name != self.vpc_id else self.vpc_id


@dataclass(frozen=True)
class PeerFacts:
    """A VPC that one side of the new peering already peers with (or is about to)."""

    vpc_id: str
    label: str
    cidrs: tuple[str, ...]
    reference: str  # "request <id>, active" or "connection pcx-… found in AWS, …"
    pending: bool  # its request waits for approval: an overlap only warns until it is approved
    route_tables: tuple[str, ...] = ()  # the tables of our side that route to it


@dataclass(frozen=True)
class ExistingPeering:
    """A live peering (a portal request or a connection found in AWS) between two VPCs."""

    requester_vpc_id: str
    accepter_vpc_id: str
    status: str
    reference: str  # "request <id>" or "connection pcx-…"


@dataclass(frozen=True)
class Limits:
    """AWS's default quotas (Amazon VPC quotas and the VPC peering guide's quota page, as of
    2026: see docs/rules.md); an admin can raise them per account where AWS did."""

    peerings_per_vpc: int = 50  # adjustable up to 125
    outstanding_per_account: int = 25
    routes_per_table: int = 500  # non-propagated routes; adjustable up to 1,000


# AWS's ceiling on active peerings per VPC, whatever increase an account gets.
MAX_PEERINGS_PER_VPC = 125


@dataclass(frozen=True)
class Usage:
    """What already counts against the quotas, besides this request."""

    requester_vpc_peerings: int = 0
    accepter_vpc_peerings: int = 0
    requester_outstanding: int = 0


# Quotas warn from this share of the limit on.
QUOTA_WARN_SHARE = 0.8


@dataclass(frozen=True)
class CheckInput:
    requester_vpc_id: str
    accepter_vpc_id: str
    requester: VpcFacts | None
    accepter: VpcFacts | None
    requester_is_callers: bool
    requester_route_tables: tuple[str, ...] = ()
    accepter_route_tables: tuple[str, ...] = ()
    requester_destination_cidrs: tuple[str, ...] = ()
    accepter_destination_cidrs: tuple[str, ...] = ()
    allow_dns_resolution: bool = False
    existing: tuple[ExistingPeering, ...] = ()
    # What each side already peers with (live portal requests, connections found in AWS).
    requester_peers: tuple[PeerFacts, ...] = ()
    accepter_peers: tuple[PeerFacts, ...] = ()
    # Finds the VPC that holds a CIDR, to explain a transitive-routing request; only called
    # for a destination that already failed, so the cost stays off the common path.
    find_vpc_owning: Callable[[str], VpcFacts | None] | None = None
    requester_limits: Limits = Limits()
    accepter_limits: Limits = Limits()
    usage: Usage = Usage()
    # Seconds since the older of the two VPCs was last read from AWS, and the age that is stale.
    inventory_age_seconds: float | None = None
    max_inventory_age_seconds: float | None = None


def _fail(code: str, detail: str, attr: str | None = None) -> CheckResult:
    return CheckResult(code, CheckStatus.FAIL, detail, attr)


def _warn(code: str, detail: str, attr: str | None = None) -> CheckResult:
    return CheckResult(code, CheckStatus.WARN, detail, attr)


def _pass(code: str, detail: str) -> CheckResult:
    return CheckResult(code, CheckStatus.PASS, detail)


def run_checks(data: CheckInput) -> list[CheckResult]:
    """Run every rule; later rules need both VPCs, so they stop at the first missing one."""
    results: list[CheckResult] = []
    for side, vpc_id, facts in (
        ("requester_vpc", data.requester_vpc_id, data.requester),
        ("accepter_vpc", data.accepter_vpc_id, data.accepter),
    ):
        if facts is None:
            results.append(_fail("vpc_not_found", f"VPC {vpc_id} is not in the portal's inventory", side))
    if data.requester is None or data.accepter is None:
        return results
    req, acc = data.requester, data.accepter

    if req.vpc_id == acc.vpc_id:
        results.append(_fail("same_vpc", f"{req.label} cannot peer with itself", "accepter_vpc"))
        return results

    if data.requester_is_callers:
        results.append(_pass("vpc_ownership", f"{req.label} belongs to your department"))
    else:
        results.append(
            _fail(
                "not_your_vpc",
                f"{req.label} (account {req.account_id}) does not belong to your department",
                "requester_vpc",
            )
        )
    if acc.has_owners:
        results.append(_pass("accepter_owner", f"{acc.label} has owners who can approve"))
    else:
        results.append(
            _fail(
                "no_approver",
                f"{acc.label} has no owners in the portal, so nobody could approve a peering with it",
                "accepter_vpc",
            )
        )

    results.append(_overlap_check(req, acc))
    results.append(_duplicate_check(req, acc, data.existing))
    results.extend(_peer_overlap_checks(data))
    results.extend(_route_table_checks(data))
    results.extend(_destination_checks(data))
    results.extend(_route_conflict_checks(data))

    if req.region != acc.region:
        results.append(
            _warn(
                "inter_region",
                f"{req.label} is in {req.region} and {acc.label} in {acc.region}: inter-region "
                "traffic crosses with an MTU of at most 8500 bytes (1500 through an internet gateway or a VPN), "
                "and security groups cannot reference the peer's",
            )
        )
    if data.allow_dns_resolution:
        results.append(_dns_check(req, acc))
    results.extend(_quota_checks(data))
    freshness = _freshness_check(data)
    if freshness is not None:
        results.append(freshness)
    return results


def _overlap_check(req: VpcFacts, acc: VpcFacts) -> CheckResult:
    pairs = cidrs.overlapping_pairs(req.cidrs, acc.cidrs)
    if pairs:
        described = "; ".join(f"{a} of {req.label} overlaps {b} of {acc.label}" for a, b in pairs)
        return _fail("cidr_overlap", f"CIDR blocks overlap: {described}", "accepter_vpc")
    return _pass(
        "cidr_overlap",
        f"no overlap between {', '.join(req.cidrs)} and {', '.join(acc.cidrs)}",
    )


def _duplicate_check(req: VpcFacts, acc: VpcFacts, existing: tuple[ExistingPeering, ...]) -> CheckResult:
    pair = {req.vpc_id, acc.vpc_id}
    for peering in existing:
        if {peering.requester_vpc_id, peering.accepter_vpc_id} == pair:
            direction = "the same direction" if peering.requester_vpc_id == req.vpc_id else "the opposite direction"
            return _fail(
                "duplicate_peering",
                f"{req.label} and {acc.label} already have a peering ({peering.reference}, "
                f"{peering.status}, {direction}); two VPCs can have only one",
                "accepter_vpc",
            )
    return _pass("duplicate_peering", f"no other peering between {req.label} and {acc.label}")


def _route_table_checks(data: CheckInput) -> list[CheckResult]:
    results = []
    assert data.requester and data.accepter
    for side, vpc, chosen in (
        ("requester_route_tables", data.requester, data.requester_route_tables),
        ("accepter_route_tables", data.accepter, data.accepter_route_tables),
    ):
        known = {rt.route_table_id for rt in vpc.route_tables}
        repeated = sorted(t for t, n in Counter(chosen).items() if n > 1)
        if repeated:
            results.append(
                _fail(
                    "duplicate_route_table",
                    f"route table {', '.join(repeated)} is listed more than once for {vpc.label}",
                    side,
                )
            )
        missing = [rt for rt in dict.fromkeys(chosen) if rt not in known]
        if missing:
            results.append(
                _fail(
                    "route_table_not_found",
                    f"route table {', '.join(missing)} is not a route table of {vpc.label}",
                    side,
                )
            )
        elif not chosen and not vpc.route_tables:
            results.append(_fail("no_route_tables", f"{vpc.label} has no route tables to add routes to", side))
    return results


def _destination_checks(data: CheckInput) -> list[CheckResult]:
    """Route destinations must be private and inside the peer's own CIDRs (no transit)."""
    assert data.requester and data.accepter
    results: list[CheckResult] = []
    for side, peer, destinations in (
        ("requester_destination_cidrs", data.accepter, data.requester_destination_cidrs),
        ("accepter_destination_cidrs", data.requester, data.accepter_destination_cidrs),
    ):
        repeated = sorted(d for d, n in Counter(destinations).items() if n > 1)
        if repeated:
            results.append(
                _fail(
                    "duplicate_destination",
                    f"{', '.join(repeated)} is listed more than once; each destination gets one route per table",
                    side,
                )
            )
        for destination in dict.fromkeys(destinations or peer.cidrs):
            if not cidrs.is_valid(destination):
                results.append(
                    _fail(
                        "invalid_cidr",
                        f"{destination!r} is not an IPv4 CIDR block with its host bits zero (for example 10.0.1.0/24)",
                        side,
                    )
                )
                continue
            kind = cidrs.addressing_class(destination)
            if kind == "public":
                results.append(
                    _fail(
                        "non_private_cidr",
                        f"{destination} is not a private address range; peering carries "
                        "traffic between private addresses only",
                        side,
                    )
                )
                continue
            if kind == "shared":
                results.append(
                    _warn(
                        "shared_address_space",
                        f"{destination} is in the shared address space 100.64.0.0/10, not RFC 1918",
                        side,
                    )
                )
            if cidrs.containing_block(destination, peer.cidrs) is None:
                owner = data.find_vpc_owning(destination) if data.find_vpc_owning else None
                if owner is not None and owner.vpc_id in (data.requester.vpc_id, data.accepter.vpc_id):
                    owner = None
                results.append(_transit_failure(destination, peer, owner, side))
    return results


def _transit_failure(destination: str, peer: VpcFacts, owner: VpcFacts | None, side: str) -> CheckResult:
    if owner is not None:
        reason = (
            f"it belongs to {owner.label}; peering is not transitive, so traffic cannot reach "
            f"{owner.label} through {peer.label}: request a direct peering with {owner.label}"
        )
    else:
        reason = (
            "peering is not transitive and carries no edge-to-edge traffic (VPN, Direct Connect, "
            "internet), so only the peer's own addresses can be routed"
        )
    return _fail(
        "destination_outside_peer",
        f"{destination} is not inside {peer.label}'s CIDRs ({', '.join(peer.cidrs)}): {reason}",
        side,
    )


def _peer_overlap_checks(data: CheckInput) -> list[CheckResult]:
    """Two peers of one VPC must not overlap: with no reverse-path forwarding its route tables
    could send those addresses to only one of them (a hub's spokes, most often)."""
    assert data.requester and data.accepter
    results: list[CheckResult] = []
    for side, new_peer, peers, attr in (
        (data.accepter, data.requester, data.accepter_peers, "requester_vpc"),
        (data.requester, data.accepter, data.requester_peers, "accepter_vpc"),
    ):
        for peer in peers:
            if peer.vpc_id == new_peer.vpc_id:
                continue  # the same pair: the duplicate check's business
            pairs = cidrs.overlapping_pairs(new_peer.cidrs, peer.cidrs)
            if not pairs:
                continue
            overlaps = "; ".join(f"{a} of {new_peer.label} overlaps {b} of {peer.label}" for a, b in pairs)
            tables = f", routed by route table {', '.join(peer.route_tables)}" if peer.route_tables else ""
            detail = (
                f"{overlaps}, which {side.label} already peers with ({peer.reference}{tables}): with no "
                f"reverse-path forwarding {side.label} cannot route to both"
            )
            if peer.pending:
                results.append(_warn("spoke_overlap", f"{detail}; the one approved first wins", attr))
            else:
                results.append(_fail("spoke_overlap", detail, attr))
    if not results:
        results.append(
            _pass(
                "spoke_overlap",
                f"no other peer of {data.accepter.label} or {data.requester.label} overlaps the new peer",
            )
        )
    return results


def _route_conflict_checks(data: CheckInput) -> list[CheckResult]:
    """A chosen table that already routes overlapping addresses elsewhere cannot take ours.

    A route to a peering (or an interface, instance or endpoint: anything inside a VPC) owns its
    addresses, broader or narrower: a narrower route of ours would take part of that peer's
    traffic, a broader one would be shadowed. A broader route to a gateway (internet, NAT,
    transit, VPN) only carries what nothing narrower claims, so ours wins by longest prefix; an
    equal or narrower one to a gateway takes traffic from the peer.
    """
    assert data.requester and data.accepter
    results: list[CheckResult] = []
    for vpc, peer, chosen, destinations, attr in (
        (
            data.requester,
            data.accepter,
            data.requester_route_tables,
            data.requester_destination_cidrs or data.accepter.cidrs,
            "requester_route_tables",
        ),
        (
            data.accepter,
            data.requester,
            data.accepter_route_tables,
            data.accepter_destination_cidrs or data.requester.cidrs,
            "accepter_route_tables",
        ),
    ):
        # Parsed once here, not per route and destination: this loop is the check's hot path.
        parsed = [(d, cidrs.parse(d)) for d in destinations if cidrs.is_valid(d)]
        tables = [rt for rt in vpc.route_tables if not chosen or rt.route_table_id in chosen]
        shadowed: list[str] = []
        for table in tables:
            where = f"route table {table.name or table.route_table_id} of {vpc.label}"
            for route in table.routes:
                if route.target == "local" or not cidrs.is_valid(route.destination):
                    continue
                if route.peer_vpc_id == peer.vpc_id:
                    continue  # a route of another peering of these two VPCs: the duplicate check's business
                existing = cidrs.parse(route.destination)
                for destination, network in parsed:
                    if not existing.overlaps(network):
                        continue
                    if existing.subnet_of(network):
                        detail = (
                            f"{where} already routes {route.destination} to {route.described_target}, which lies "
                            f"within {destination}; with no reverse-path forwarding it cannot route to both"
                        )
                    elif is_gateway(route.target):
                        shadowed.append(f"{table.name or table.route_table_id}: {route.destination} → {route.target}")
                        continue
                    else:
                        detail = (
                            f"{where} already routes {route.destination} to {route.described_target}, which "
                            f"contains {destination}: that peer owns those addresses, and a narrower route would "
                            "take part of its traffic"
                        )
                    if route.claim == "pending":
                        results.append(_warn("route_conflict", f"{detail}; the one approved first wins", attr))
                    else:
                        results.append(_fail("route_conflict", detail, attr))
        if shadowed:
            results.append(
                _pass(
                    "route_conflict",
                    f"broader routes to gateways in {vpc.label} stay ({'; '.join(dict.fromkeys(shadowed))}): "
                    "the peering's narrower routes win by longest prefix",
                )
            )
    return results


def _dns_check(req: VpcFacts, acc: VpcFacts) -> CheckResult:
    off = [
        f"{v.label} has DNS {what} disabled"
        for v in (req, acc)
        for what, enabled in (("hostnames", v.dns_hostnames), ("support", v.dns_support))
        if not enabled
    ]
    if off:
        return _fail(
            "dns_prerequisites",
            "DNS resolution across the peering needs DNS hostnames and DNS support on both VPCs: " + "; ".join(off),
            "allow_dns_resolution",
        )
    return _pass("dns_prerequisites", "DNS hostnames and support are enabled on both VPCs")


def _quota_level(code: str, used: int, limit: int, what: str, attr: str | None, *, beyond: str = "") -> CheckResult:
    detail = f"{what}: {used} of {limit} after this request"
    if used > limit:
        return _fail(
            code, f"{detail}, over the quota; ask AWS to raise it, then an admin to raise it here{beyond}", attr
        )
    if used >= QUOTA_WARN_SHARE * limit:
        return _warn(code, f"{detail}, close to the quota{beyond}", attr)
    return _pass(code, detail)


TRANSIT_GATEWAY_NOTE = (
    f"; AWS allows at most {MAX_PEERINGS_PER_VPC} active peerings per VPC, so a hub that keeps growing "
    "needs a Transit Gateway (one attachment per VPC instead of a peering per pair)"
)


def _quota_checks(data: CheckInput) -> list[CheckResult]:
    assert data.requester and data.accepter
    results = [
        _quota_level(
            "quota_peerings_per_vpc",
            data.usage.requester_vpc_peerings + 1,
            data.requester_limits.peerings_per_vpc,
            f"peerings of {data.requester.label}",
            "requester_vpc",
            beyond=TRANSIT_GATEWAY_NOTE,
        ),
        _quota_level(
            "quota_peerings_per_vpc",
            data.usage.accepter_vpc_peerings + 1,
            data.accepter_limits.peerings_per_vpc,
            f"peerings of {data.accepter.label}",
            "accepter_vpc",
            beyond=TRANSIT_GATEWAY_NOTE,
        ),
        _quota_level(
            "quota_outstanding_requests",
            data.usage.requester_outstanding + 1,
            data.requester_limits.outstanding_per_account,
            f"outstanding peering requests of account {data.requester.account_id}",
            "requester_vpc",
        ),
    ]
    for vpc, chosen, destinations, limits, attr in (
        (
            data.requester,
            data.requester_route_tables,
            data.requester_destination_cidrs or data.accepter.cidrs,
            data.requester_limits,
            "requester_route_tables",
        ),
        (
            data.accepter,
            data.accepter_route_tables,
            data.accepter_destination_cidrs or data.requester.cidrs,
            data.accepter_limits,
            "accepter_route_tables",
        ),
    ):
        for table in vpc.route_tables:
            if chosen and table.route_table_id not in chosen:
                continue
            # Routes of requests still waiting for approval may never be made: not counted.
            counted = [r for r in table.routes if r.claim != "pending"]
            present = {r.destination for r in counted}
            adding = len({d for d in destinations if d not in present})
            results.append(
                _quota_level(
                    "quota_routes_per_table",
                    len(counted) + adding,
                    limits.routes_per_table,
                    f"routes in {table.name or table.route_table_id} ({table.route_table_id}) of {vpc.label}",
                    attr,
                )
            )
    return results


def _freshness_check(data: CheckInput) -> CheckResult | None:
    if data.max_inventory_age_seconds is None:
        return None
    if data.inventory_age_seconds is None:
        return _warn("inventory_stale", "these VPCs have never been read from AWS; sync their accounts first")
    hours = data.inventory_age_seconds / 3600
    if data.inventory_age_seconds > data.max_inventory_age_seconds:
        accounts = ", ".join(dict.fromkeys(v.account_id for v in (data.requester, data.accepter) if v))
        return _warn(
            "inventory_stale",
            f"the checks used an inventory read from AWS {hours:.1f} h ago; sync "
            f"{'accounts' if ', ' in accounts else 'account'} {accounts} "
            "for current routes and CIDRs",
        )
    return _pass("inventory_stale", f"inventory read from AWS {hours:.1f} h ago")


def failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == CheckStatus.FAIL]
