"""The portal's picture of the network: AWS as last synced, plus the portal's own work.

An inventory sync writes what AWS holds: VPCs, CIDR blocks, route tables with their routes, and
peering connections. The portal's own routes are recorded as it makes them (`ManagedRoute`:
written when a request is filed, by the saga as it creates and removes each route, and by
adoption), so everything that reads the network (the checks, the plan, the reconciler, the pages
and the API) sees the portal's work with no sync in between:

- a route the portal created is in its table, owned by its request, even before a sync reads it;
- a route the portal removed is gone, even if the last sync still saw it;
- a route of a request still on its way (pending approval, approved, provisioning) is a *claim*:
  not in AWS, but its addresses are spoken for.

A sync replaces the synced part with what AWS holds, so other people's changes come in with it
(new routes in a table); a route of ours that AWS no longer has is drift, which the reconciler
reports on the request.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from requests_app.domain import checks as rules
from requests_app.domain.status import LIVE_STATUSES, Status
from requests_app.models import ManagedRoute, ObservedPeering, PeeringRequest, RouteTable, Vpc

# AWS states of a connection that still peers two VPCs (or is about to).
LIVE_AWS_STATES = ("initiating-request", "pending-acceptance", "provisioning", "active")
# Requests whose planned routes are spoken for: not in AWS yet, but on their way.
CLAIMING = (Status.PENDING_APPROVAL, Status.APPROVED, Status.PROVISIONING)
# Requests that hold their peering, or are about to (approval is the point of no return).
HOLDING = (Status.APPROVED, Status.PROVISIONING, Status.ACTIVE, Status.DECOMMISSIONING)
# A request holds its VPC pair while it is live, and while it failed still holding a connection
# in AWS (a teardown that did not finish): the pair is not free until that connection is gone.
HOLDS_PAIR = Q(status__in=sorted(s.value for s in LIVE_STATUSES)) | (
    Q(status=Status.FAILED) & ~Q(aws_peering_connection_id="")
)


class Namer:
    """How requests and VPCs are named in check details and advice.

    The plain one names everything (operators, logs); a `RestrictedNamer` names only what its
    reader may see.
    """

    needs_owners = False

    def shows_request(self, request: PeeringRequest) -> bool:
        """Whether the reader may learn this request's id."""
        return True

    def shows(self, vpc: Vpc) -> bool:
        """Whether the reader may learn this VPC's name and id."""
        return True

    def request(self, request: PeeringRequest) -> str:
        return f"request {request.pk}" if self.shows_request(request) else "a request of another department"

    def vpc(self, vpc: Vpc) -> str:
        return vpc.label if self.shows(vpc) else "a VPC of another department"

    def unknown_vpc(self, vpc_id: str) -> str:
        """A VPC the inventory does not hold (the other end of a peering found in AWS)."""
        return vpc_id

    def connection(self, request: PeeringRequest) -> str:
        return (
            f"{self.request(request)}: {self.vpc(request.requester_vpc)} → {self.vpc(request.accepter_vpc)}, "
            f"{request.status}"
        )


PLAIN = Namer()


class RestrictedNamer(Namer):
    """Names only what one reader may see (`shows`, `shows_request`), which needs each VPC's owners
    loaded; a VPC outside the inventory is not named either. `peering.preflight.ViewerNamer` is
    the one for the caller of the API or the form, `DepartmentNamer` for words stored on a request."""

    needs_owners = True

    def unknown_vpc(self, vpc_id: str) -> str:
        return "a VPC outside the portal's inventory"


class DepartmentNamer(RestrictedNamer):
    """Names for words stored on a request (its checks, a failure reason, the mail about it): what
    any member of the requesting department may see, whoever reads them later. Its own
    department's VPCs and requests, and VPCs with owners (the hubs everyone may peer with)."""

    def __init__(self, department_id: int) -> None:
        self.department_id = department_id

    def shows_request(self, request: PeeringRequest) -> bool:
        return request.department_id == self.department_id

    def shows(self, vpc: Vpc) -> bool:
        return vpc.account.department_id == self.department_id or bool(vpc.owners.all())


def _named_requests(requests: QuerySet[PeeringRequest], namer: Namer) -> QuerySet[PeeringRequest]:
    """`requests` with what naming them (and their VPCs) needs."""
    requests = requests.select_related("requester_vpc__account", "accepter_vpc__account")
    if namer.needs_owners:
        requests = requests.prefetch_related("requester_vpc__owners", "accepter_vpc__owners")
    return requests


@dataclass(frozen=True)
class _Row:
    """One `ManagedRoute`, read as plain values: a hub can hold hundreds of them."""

    route_table_id: str
    destination: str
    state: str
    changed_at: datetime
    side: str
    request_id: uuid.UUID


@dataclass(frozen=True)
class _Owner:
    text: str  # who the connection belongs to, in words
    vpc_ids: tuple[str, str]  # the two VPCs it joins

    def peer_of(self, vpc_id: str) -> str:
        return self.vpc_ids[1] if self.vpc_ids[0] == vpc_id else self.vpc_ids[0]


def _request_owner(request: PeeringRequest, namer: Namer) -> _Owner:
    return _Owner(namer.connection(request), (request.requester_vpc.vpc_id, request.accepter_vpc.vpc_id))


# --- routes ---------------------------------------------------------------------------------------
def routes_by_table(
    tables: Iterable[RouteTable],
    *,
    exclude_request: uuid.UUID | None = None,
    namer: Namer = PLAIN,
) -> dict[str, tuple[rules.RouteFacts, ...]]:
    """Each table's routes as the portal knows them: synced from AWS, plus its own work.

    `tables` need `vpc` loaded (its `synced_at` tells which of our removals the sync missed).
    A fixed number of queries for any number of tables and routes.
    """
    tables = list(tables)
    if not tables:
        return {}
    synced_at = {t.route_table_id: t.vpc.synced_at for t in tables}
    oldest_sync = min((s for s in synced_at.values() if s is not None), default=None)
    removed_since = Q(state=ManagedRoute.State.REMOVED)
    if oldest_sync is not None:
        removed_since &= Q(changed_at__gte=oldest_sync)
    rows = [
        _Row(*values)
        for values in ManagedRoute.objects.filter(route_table_id__in=list(synced_at))
        .filter(
            Q(state=ManagedRoute.State.CREATED)
            | Q(state=ManagedRoute.State.PLANNED, request__status__in=CLAIMING)
            | removed_since
        )
        .exclude(request_id=exclude_request)
        .values_list("route_table_id", "destination", "state", "changed_at", "side", "request_id")
    ]
    synced_targets = {r["target"] for t in tables for r in t.routes if r["target"].startswith("pcx-")}
    # The requests the rows belong to, and those the synced routes point at: one query, each named once.
    requests = {
        r.pk: r
        for r in _named_requests(
            PeeringRequest.objects.filter(
                Q(pk__in={row.request_id for row in rows}) | Q(aws_peering_connection_id__in=synced_targets)
            ).order_by("created_at"),  # the newest request of a reused connection id wins
            namer,
        )
    }
    owners = _observed_owners(synced_targets, namer)
    owners |= {
        r.aws_peering_connection_id: _request_owner(r, namer)
        for r in requests.values()
        if r.aws_peering_connection_id in synced_targets
    }
    by_table: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_table[row.route_table_id].append(row)
    named = {pk: _request_owner(r, namer) for pk, r in requests.items()}
    return {
        t.route_table_id: _merge(
            t, by_table.get(t.route_table_id, []), synced_at[t.route_table_id], owners, requests, named
        )
        for t in tables
    }


def _observed_owners(connection_ids: set[str], namer: Namer) -> dict[str, _Owner]:
    """Connections found in AWS, for synced routes whose connection no request holds."""
    observed = list(ObservedPeering.objects.filter(connection_id__in=connection_ids))
    if not observed:
        return {}
    ends = {vpc_id for seen in observed for vpc_id in (seen.requester_vpc_id, seen.accepter_vpc_id)}
    vpcs = Vpc.objects.filter(vpc_id__in=ends).select_related("account")
    if namer.needs_owners:
        vpcs = vpcs.prefetch_related("owners")
    known = {vpc.vpc_id: vpc for vpc in vpcs}

    def name(vpc_id: str) -> str:
        vpc = known.get(vpc_id)
        return namer.vpc(vpc) if vpc is not None else namer.unknown_vpc(vpc_id)

    return {
        seen.connection_id: _Owner(
            f"connection {seen.connection_id} between {name(seen.requester_vpc_id)} and "
            f"{name(seen.accepter_vpc_id)}, not made by the portal",
            (seen.requester_vpc_id, seen.accepter_vpc_id),
        )
        for seen in observed
    }


def _merge(
    table: RouteTable,
    rows: list[_Row],
    synced_at: datetime | None,
    owners: dict[str, _Owner],
    requests: dict[uuid.UUID, PeeringRequest],
    named: dict[uuid.UUID, _Owner],
) -> tuple[rules.RouteFacts, ...]:
    removed = {
        (row.destination, requests[row.request_id].aws_peering_connection_id)
        for row in rows
        if row.state == ManagedRoute.State.REMOVED and (synced_at is None or row.changed_at >= synced_at)
    }
    routes: list[rules.RouteFacts] = []
    seen: set[tuple[str, str]] = set()
    for route in table.routes:
        key = (route["destination"], route["target"])
        if key in removed:
            continue  # the portal deleted it after the last sync read it
        seen.add(key)
        owner = owners.get(route["target"])
        routes.append(
            rules.RouteFacts(
                route["destination"],
                route["target"],
                owner=owner.text if owner else "",
                blackhole=route.get("state") == "blackhole",
                peer_vpc_id=owner.peer_of(table.vpc.vpc_id) if owner else "",
            )
        )
    for row in rows:
        request, owner = requests[row.request_id], named[row.request_id]
        peer_vpc_id = owner.vpc_ids[1] if row.side == ManagedRoute.Side.REQUESTER else owner.vpc_ids[0]
        if row.state == ManagedRoute.State.CREATED:
            key = (row.destination, request.aws_peering_connection_id)
            if key not in seen:
                seen.add(key)
                routes.append(
                    rules.RouteFacts(
                        row.destination, request.aws_peering_connection_id, owner=owner.text, peer_vpc_id=peer_vpc_id
                    )
                )
        elif row.state == ManagedRoute.State.PLANNED:
            claim = "pending" if request.status == Status.PENDING_APPROVAL else "approved"
            routes.append(rules.RouteFacts(row.destination, "", owner=owner.text, claim=claim, peer_vpc_id=peer_vpc_id))
    return tuple(routes)


# --- peers ----------------------------------------------------------------------------------------
def peers_of(
    vpcs: Iterable[Vpc],
    *,
    exclude_request: uuid.UUID | None = None,
    namer: Namer = PLAIN,
    routes: dict[str, tuple[rules.RouteFacts, ...]] | None = None,
) -> dict[str, tuple[rules.PeerFacts, ...]]:
    """Every VPC each of `vpcs` peers with, or is about to: live portal requests and connections
    found in AWS that the portal did not make, by the VPC's id.

    Each peer comes with its CIDR blocks and the route tables of our VPC that route (or will
    route) to it, so a new peer whose blocks overlap one of them can be refused by name. `routes`
    (the merged routes of the VPCs' tables) names the tables of connections found in AWS.
    A fixed number of queries for any number of peers.
    """
    vpcs = list(vpcs)
    by_pk = {v.pk: v for v in vpcs}
    found: dict[str, list[rules.PeerFacts]] = {v.vpc_id: [] for v in vpcs}
    holding = PeeringRequest.objects.filter(HOLDS_PAIR).filter(Q(requester_vpc__in=vpcs) | Q(accepter_vpc__in=vpcs))
    if exclude_request is not None:
        holding = holding.exclude(pk=exclude_request)
    requests = list(
        _named_requests(holding, namer).prefetch_related("requester_vpc__cidr_blocks", "accepter_vpc__cidr_blocks")
    )
    tables_of: dict[tuple[uuid.UUID, str], list[str]] = defaultdict(list)
    for request_id, side, table_id in (
        ManagedRoute.objects.filter(request__in=[r.pk for r in requests])
        .exclude(state=ManagedRoute.State.REMOVED)
        .order_by("id")
        .values_list("request_id", "side", "route_table_id")
    ):
        if table_id not in tables_of[(request_id, side)]:
            tables_of[(request_id, side)].append(table_id)
    for request in requests:
        for ours, side, peer in (
            (request.requester_vpc, "requester", request.accepter_vpc),
            (request.accepter_vpc, "accepter", request.requester_vpc),
        ):
            if ours.pk not in by_pk:
                continue
            found[ours.vpc_id].append(
                rules.PeerFacts(
                    vpc_id=peer.vpc_id,
                    label=namer.vpc(peer),
                    cidrs=tuple(peer.cidr_list()),
                    reference=f"{namer.request(request)}, {request.status}",
                    pending=request.status == Status.PENDING_APPROVAL,
                    route_tables=tuple(tables_of[(request.pk, side)]),
                )
            )
    ids = list(found)
    observed = [
        o
        for o in ObservedPeering.objects.filter(
            Q(requester_vpc_id__in=ids) | Q(accepter_vpc_id__in=ids), status__in=LIVE_AWS_STATES, portal_request_id=""
        )
        if o.connection_id not in {r.aws_peering_connection_id for r in requests}
    ]
    others = Vpc.objects.filter(
        vpc_id__in=[o.accepter_vpc_id if o.requester_vpc_id in found else o.requester_vpc_id for o in observed],
        present_in_aws=True,
    ).select_related("account")
    others = others.prefetch_related("cidr_blocks", *(["owners"] if namer.needs_owners else []))
    known = {v.vpc_id: v for v in others}
    for seen in observed:
        for our_id, other_id, other_blocks in (
            (seen.requester_vpc_id, seen.accepter_vpc_id, seen.accepter_cidrs),
            (seen.accepter_vpc_id, seen.requester_vpc_id, seen.requester_cidrs),
        ):
            if our_id not in found:
                continue
            other = known.get(other_id)
            tables = [
                table_id
                for table_id, table_routes in (routes or {}).items()
                if any(r.target == seen.connection_id for r in table_routes)
            ]
            found[our_id].append(
                rules.PeerFacts(
                    vpc_id=other_id,
                    label=namer.vpc(other) if other else namer.unknown_vpc(other_id),
                    cidrs=tuple(other.cidr_list() if other else other_blocks),
                    reference=f"connection {seen.connection_id} found in AWS, not made by the portal, {seen.status}",
                    pending=False,
                    route_tables=tuple(tables),
                )
            )
    return {vpc_id: tuple(peers) for vpc_id, peers in found.items()}


# --- capacity -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableCapacity:
    route_table_id: str
    name: str
    used: int  # routes in it now (local included), as the portal knows them
    pending: int  # routes live requests will add
    limit: int


@dataclass(frozen=True)
class Advice:
    code: str
    detail: str


@dataclass(frozen=True)
class Capacity:
    vpc: Vpc
    active_peerings: int
    pending_peerings: int
    peering_limit: int
    route_tables: tuple[TableCapacity, ...]
    outstanding_used: int
    outstanding_limit: int
    advice: tuple[Advice, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "vpc_id": self.vpc.vpc_id,
            "peerings": {
                "active": self.active_peerings,
                "pending": self.pending_peerings,
                "limit": self.peering_limit,
            },
            "route_tables": [
                {
                    "route_table_id": t.route_table_id,
                    "name": t.name,
                    "used": t.used,
                    "pending": t.pending,
                    "limit": t.limit,
                }
                for t in self.route_tables
            ],
            "outstanding_requests": {"used": self.outstanding_used, "limit": self.outstanding_limit},
            "advice": [{"code": a.code, "detail": a.detail} for a in self.advice],
        }

    @property
    def peering_share(self) -> float:
        return (self.active_peerings + self.pending_peerings) / self.peering_limit if self.peering_limit else 1.0


MAX_PEERINGS_PER_VPC = rules.MAX_PEERINGS_PER_VPC
# AWS's reasons, from Well-Architected REL02-BP04 and the multi-VPC networking whitepaper.
TRANSIT_GATEWAY_REASON = (
    "AWS recommends a hub-and-spoke Transit Gateway once many networks connect: each VPC attaches once "
    "instead of needing a peering per pair, which grows hard to manage and stops at "
    f"{MAX_PEERINGS_PER_VPC} active peerings per VPC"
)


def capacities(vpcs: list[Vpc], *, limits: dict[int, rules.Limits], outstanding: dict[int, int]) -> list[Capacity]:
    """Headroom of each VPC against each quota, counting live and pending work: a fixed number of
    queries for any number of VPCs (the topology page shows every hub's).

    The VPCs need `account` and `route_tables` (with `vpc`) loaded; `limits` and `outstanding`
    (pending-acceptance requests) are by account pk, from the caller, which also answers the
    pre-flight quotas.
    """
    if not vpcs:
        return []
    ids = [v.vpc_id for v in vpcs]
    seen: dict[str, set[str]] = defaultdict(set)  # active connections AWS showed, by VPC id
    for pcx, requester, accepter in ObservedPeering.objects.filter(
        Q(requester_vpc_id__in=ids) | Q(accepter_vpc_id__in=ids), status="active"
    ).values_list("connection_id", "requester_vpc_id", "accepter_vpc_id"):
        seen[requester].add(pcx)
        seen[accepter].add(pcx)
    live: dict[int, set[str]] = defaultdict(set)  # the portal's own, made or deleted since the sync
    gone: dict[int, set[str]] = defaultdict(set)
    pending: dict[int, int] = defaultdict(int)
    for requester_pk, accepter_pk, status, pcx in (
        PeeringRequest.objects.filter(Q(requester_vpc__in=vpcs) | Q(accepter_vpc__in=vpcs))
        .filter(status__in=[Status.ACTIVE, Status.DECOMMISSIONING, Status.DECOMMISSIONED, *CLAIMING])
        .values_list("requester_vpc_id", "accepter_vpc_id", "status", "aws_peering_connection_id")
    ):
        for pk in (requester_pk, accepter_pk):
            if status in CLAIMING:
                pending[pk] += 1
            elif status == Status.DECOMMISSIONED:
                if pcx:
                    gone[pk].add(pcx)  # deleted by the portal after the last sync saw it
            elif pcx:
                live[pk].add(pcx)
    merged = routes_by_table([t for v in vpcs for t in v.route_tables.all()])
    return [
        _capacity(
            v,
            active=len((seen[v.vpc_id] - gone[v.pk]) | live[v.pk]),
            pending=pending[v.pk],
            merged=merged,
            limits=limits[v.account_id],
            outstanding=outstanding[v.account_id],
        )
        for v in vpcs
    ]


def _capacity(
    vpc: Vpc,
    *,
    active: int,
    pending: int,
    merged: dict[str, tuple[rules.RouteFacts, ...]],
    limits: rules.Limits,
    outstanding: int,
) -> Capacity:
    table_rows = tuple(
        TableCapacity(
            route_table_id=t.route_table_id,
            name=t.name,
            used=sum(1 for r in merged[t.route_table_id] if not r.claim),
            pending=sum(1 for r in merged[t.route_table_id] if r.claim),
            limit=limits.routes_per_table,
        )
        for t in vpc.route_tables.all()
    )
    advice: list[Advice] = []
    peering_limit = limits.peerings_per_vpc
    if peering_limit and (active + pending) >= rules.QUOTA_WARN_SHARE * peering_limit:
        advice.append(
            Advice(
                "peerings_near_limit",
                f"{vpc.label} has {active} active and {pending} pending peerings of {peering_limit} allowed",
            )
        )
        if vpc.is_services_vpc:
            advice.append(
                Advice(
                    "use_transit_gateway",
                    f"{vpc.label} is a hub close to its peering limit ({peering_limit}; at most "
                    f"{MAX_PEERINGS_PER_VPC} per VPC): {TRANSIT_GATEWAY_REASON}",
                )
            )
    for t in table_rows:
        if t.limit and t.used + t.pending >= rules.QUOTA_WARN_SHARE * t.limit:
            advice.append(
                Advice(
                    "route_table_near_limit",
                    f"route table {t.name or t.route_table_id} ({t.route_table_id}) holds {t.used} routes and "
                    f"live requests will add {t.pending}, of {t.limit} allowed",
                )
            )
    if limits.outstanding_per_account and outstanding >= rules.QUOTA_WARN_SHARE * limits.outstanding_per_account:
        advice.append(
            Advice(
                "outstanding_near_limit",
                f"account {vpc.account.account_id} has {outstanding} peering requests waiting for acceptance in AWS, "
                f"of {limits.outstanding_per_account} allowed",
            )
        )
    return Capacity(
        vpc=vpc,
        active_peerings=active,
        pending_peerings=pending,
        peering_limit=peering_limit,
        route_tables=table_rows,
        outstanding_used=outstanding,
        outstanding_limit=limits.outstanding_per_account,
        advice=tuple(advice),
    )
