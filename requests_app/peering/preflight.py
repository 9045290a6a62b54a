"""Pre-flight: every rule for a would-be request, on the network as the portal knows it; creates nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from requests_app.core.errors import PortalError
from requests_app.domain import checks as rules
from requests_app.domain import cidrs
from requests_app.domain.plan import Operation, PeeringPlan, RouteSpec, build_routes
from requests_app.inventory import network
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory.network import HOLDS_PAIR, LIVE_AWS_STATES
from requests_app.models import ManagedRoute, ObservedPeering, PeeringRequest, Vpc, VpcCidr
from requests_app.peering import permissions
from requests_app.peering.quotas import limits_of, outstanding_count, vpc_peering_count

MAX_VPC_BLOCK_SIZE = 2**16  # AWS allows VPC CIDR blocks from /16 to /28


# --- evaluating a request (pre-flight) --------------------------------------------------------
@dataclass(frozen=True)
class PeeringDraft:
    requester_vpc: str
    accepter_vpc: str
    requester_route_tables: list[str] = field(default_factory=list)
    accepter_route_tables: list[str] = field(default_factory=list)
    requester_destination_cidrs: list[str] = field(default_factory=list)
    accepter_destination_cidrs: list[str] = field(default_factory=list)
    allow_dns_resolution: bool = False
    justification: str = ""
    external_ref: str = ""


@dataclass
class Evaluation:
    results: list[rules.CheckResult]
    requester: Vpc | None
    accepter: Vpc | None
    requester_route_tables: list[str]
    accepter_route_tables: list[str]
    requester_destination_cidrs: list[str]
    accepter_destination_cidrs: list[str]
    plan: PeeringPlan | None

    @property
    def ok(self) -> bool:
        return not rules.failures(self.results)

    @property
    def checks(self) -> list[rules.CheckDict]:
        return [r.as_dict() for r in self.results]

    @property
    def operations(self) -> list[Operation]:
        return self.plan.operations() if self.plan else []


def canonical_draft(draft: PeeringDraft) -> PeeringDraft:
    """The draft with every CIDR written the one way the portal stores and sends it to AWS."""
    return replace(
        draft,
        requester_destination_cidrs=[cidrs.canonical(c) for c in draft.requester_destination_cidrs],
        accepter_destination_cidrs=[cidrs.canonical(c) for c in draft.accepter_destination_cidrs],
    )


def vpc_facts(vpc: Vpc, routes: dict[str, tuple[rules.RouteFacts, ...]] | None = None) -> rules.VpcFacts:
    """A VPC as the rules see it; `routes` are its tables' routes from the network model
    (`network.routes_by_table`), or else the routes the last sync read."""
    return rules.VpcFacts(
        vpc_id=vpc.vpc_id,
        name=vpc.name,
        account_id=vpc.account.account_id,
        region=vpc.region,
        cidrs=tuple(vpc.cidr_list()),
        route_tables=tuple(
            rules.RouteTableFacts(
                route_table_id=rt.route_table_id,
                name=rt.name,
                is_main=rt.is_main,
                routes=routes[rt.route_table_id]
                if routes is not None and rt.route_table_id in routes
                else tuple(rules.RouteFacts(r["destination"], r["target"]) for r in rt.routes),
            )
            for rt in vpc.route_tables.all()
        ),
        dns_hostnames=vpc.dns_hostnames,
        dns_support=vpc.dns_support,
        has_owners=bool(vpc.owners.all()),
    )


class ViewerNamer(network.RestrictedNamer):
    """Names in check details for one viewer: a request they cannot open, or a VPC they may not
    learn about, is described without its id or name. With `spokes`, for an answer about one
    request (a refusal), the owner of a VPC also sees the VPCs that requested peering with it, as
    those requests' pages show them; lists (the inventory page) keep to the narrower rule."""

    def __init__(self, viewer: User, department_ids: set[int], *, spokes: bool = False) -> None:
        self.viewer = viewer
        self.department_ids = department_ids
        self._spokes: set[int] | None = None if spokes else set()

    def shows_request(self, request: PeeringRequest) -> bool:
        return permissions.can_view_request(self.viewer, request)

    def shows(self, vpc: Vpc) -> bool:
        return not hidden_from(self.viewer, vpc, self.department_ids) or vpc.pk in self.spokes()

    def spokes(self) -> set[int]:
        """The VPCs of requests whose accepter the viewer owns (one query, when first needed)."""
        if self._spokes is None:
            owned = permissions.owned_vpc_ids(self.viewer)
            self._spokes = (
                set(PeeringRequest.objects.filter(accepter_vpc_id__in=owned).values_list("requester_vpc_id", flat=True))
                if owned
                else set()
            )
        return self._spokes


def _existing_peerings(
    vpc_a: str, vpc_b: str, *, exclude_request: uuid.UUID | None = None, namer: network.Namer = network.PLAIN
) -> tuple[rules.ExistingPeering, ...]:
    pair_key = PeeringRequest.make_pair_key(vpc_a, vpc_b)
    live = PeeringRequest.objects.filter(HOLDS_PAIR, pair_key=pair_key).select_related("requester_vpc", "accepter_vpc")
    if exclude_request is not None:
        live = live.exclude(pk=exclude_request)
    found = [
        rules.ExistingPeering(
            r.requester_vpc.vpc_id,
            r.accepter_vpc.vpc_id,
            r.status,
            namer.request(r),
        )
        for r in live
    ]
    portal_ids = {str(r.pk) for r in live} | ({str(exclude_request)} if exclude_request else set())
    observed = ObservedPeering.objects.filter(
        Q(requester_vpc_id=vpc_a, accepter_vpc_id=vpc_b) | Q(requester_vpc_id=vpc_b, accepter_vpc_id=vpc_a),
        status__in=LIVE_AWS_STATES,
    )
    found += [
        rules.ExistingPeering(
            o.requester_vpc_id,
            o.accepter_vpc_id,
            o.status,
            f"connection {o.connection_id} found in AWS" + ("" if o.is_managed else ", not made by the portal"),
        )
        for o in observed
        if o.portal_request_id not in portal_ids
    ]
    return tuple(found)


def find_vpc_owning(cidr: str) -> rules.VpcFacts | None:
    """The known VPC one of whose blocks contains `cidr` (an indexed range query)."""
    first, last = cidrs.address_range(cidr)
    block = (
        VpcCidr.objects.select_related("vpc__account")
        .prefetch_related("vpc__cidr_blocks", "vpc__route_tables", "vpc__owners")
        # A VPC block is at most a /16, so one that holds `cidr` starts at most 65,535
        # addresses below it: that bounds the index range even when no VPC holds it.
        .filter(first_address__lte=first, first_address__gte=first - MAX_VPC_BLOCK_SIZE + 1, last_address__gte=last)
        .filter(vpc__present_in_aws=True)
        .order_by("-first_address")
        .first()
    )
    return vpc_facts(block.vpc) if block else None


def hidden_from(viewer: User, vpc: Vpc, department_ids: set[int]) -> bool:
    """A VPC the caller may not learn about: not their department's, not one they own, no owners."""
    if permissions.is_admin(viewer) or vpc.account.department_id in department_ids:
        return False
    return not vpc.owners.all() and vpc.pk not in permissions.owned_vpc_ids(viewer)


def _visible_owner_finder(namer: network.Namer) -> Callable[[str], rules.VpcFacts | None]:
    """`find_vpc_owning`, finding only VPCs the namer's reader may learn about."""
    if namer is network.PLAIN:
        return find_vpc_owning

    def find(cidr: str) -> rules.VpcFacts | None:
        owner = find_vpc_owning(cidr)
        if owner is None:
            return None
        vpc = inventory_selectors.vpc_with_facts(owner.vpc_id)
        return owner if vpc is not None and namer.shows(vpc) else None

    return find


def peering_request_evaluate(
    *,
    draft: PeeringDraft,
    department_ids: set[int],
    viewer: User | None = None,
    reader: User | None = None,
    record_for: int | None = None,
    exclude_request: uuid.UUID | None = None,
) -> Evaluation:
    """Run every rule for a would-be request; creates nothing.

    With a `viewer` (the API and the form), the answer reveals nothing the viewer may not see: a
    requester VPC of another department stops the checks with `not_your_vpc` and no details, and
    a peer VPC they cannot see is `vpc_not_found`. Who reads the words decides how other VPCs and
    requests are named: checks that will be stored on the request (filing, approval,
    provisioning; a failure reason is made of them too) are worded for any member of its
    department (`record_for`, the department's id), who may read them later; otherwise for the
    `reader` (default: the viewer; neither: everything is named, for operators and logs).
    """
    draft = canonical_draft(draft)
    requester = inventory_selectors.vpc_with_facts(draft.requester_vpc)
    accepter = inventory_selectors.vpc_with_facts(draft.accepter_vpc)
    # Another department's VPC and one that does not exist get the same answer, so ids cannot be
    # probed; only a VPC of the caller's own department that left AWS is named as not found.
    if viewer is not None and (
        (requester is not None and requester.account.department_id not in department_ids)
        or (
            requester is None and not inventory_selectors.vpc_of_departments_exists(draft.requester_vpc, department_ids)
        )
    ):
        refusal = rules.CheckResult(
            "not_your_vpc",
            rules.CheckStatus.FAIL,
            f"{draft.requester_vpc} is not one of your department's VPCs",
            "requester_vpc",
        )
        return Evaluation([refusal], None, None, [], [], [], [], None)
    if viewer is not None and accepter is not None and hidden_from(viewer, accepter, department_ids):
        accepter = None
    namer: network.Namer = network.PLAIN
    if record_for is not None:
        namer = network.DepartmentNamer(record_for)
    elif reader is not None:
        namer = ViewerNamer(reader, permissions.department_ids(reader), spokes=True)
    elif viewer is not None:
        namer = ViewerNamer(viewer, department_ids)
    requester_tables = list(draft.requester_route_tables) or (
        [rt.route_table_id for rt in requester.route_tables.all()] if requester else []
    )
    accepter_tables = list(draft.accepter_route_tables) or (
        [rt.route_table_id for rt in accepter.route_tables.all()] if accepter else []
    )
    extra: dict[str, Any] = {}
    routes: dict[str, tuple[rules.RouteFacts, ...]] | None = None
    if requester and accepter:
        routes = network.routes_by_table(
            [*requester.route_tables.all(), *accepter.route_tables.all()],
            exclude_request=exclude_request,
            namer=namer,
        )
        synced = [v.synced_at for v in (requester, accepter)]
        peers = network.peers_of([requester, accepter], exclude_request=exclude_request, namer=namer, routes=routes)
        extra = {
            "requester_peers": peers.get(requester.vpc_id, ()),
            "accepter_peers": peers.get(accepter.vpc_id, ()),
            "existing": _existing_peerings(
                draft.requester_vpc, draft.accepter_vpc, exclude_request=exclude_request, namer=namer
            ),
            "requester_limits": limits_of(requester.account),
            "accepter_limits": limits_of(accepter.account),
            "usage": rules.Usage(
                requester_vpc_peerings=vpc_peering_count(requester, exclude_request),
                accepter_vpc_peerings=vpc_peering_count(accepter, exclude_request),
                requester_outstanding=outstanding_count(requester.account, exclude_request),
            ),
            "inventory_age_seconds": None
            if None in synced
            else (timezone.now() - min(s for s in synced if s is not None)).total_seconds(),
            "max_inventory_age_seconds": settings.INVENTORY_MAX_AGE_SECONDS,
        }
    req_facts = vpc_facts(requester, routes) if requester else None
    acc_facts = vpc_facts(accepter, routes) if accepter else None
    results = rules.run_checks(
        rules.CheckInput(
            requester_vpc_id=draft.requester_vpc,
            accepter_vpc_id=draft.accepter_vpc,
            requester=req_facts,
            accepter=acc_facts,
            requester_is_callers=bool(requester and requester.account.department_id in department_ids),
            requester_route_tables=tuple(draft.requester_route_tables),
            accepter_route_tables=tuple(draft.accepter_route_tables),
            requester_destination_cidrs=tuple(draft.requester_destination_cidrs),
            accepter_destination_cidrs=tuple(draft.accepter_destination_cidrs),
            allow_dns_resolution=draft.allow_dns_resolution,
            find_vpc_owning=_visible_owner_finder(namer),
            **extra,
        )
    )
    plan = None
    requester_destinations: list[str] = []
    accepter_destinations: list[str] = []
    if requester and accepter and req_facts and acc_facts:
        requester_destinations = list(draft.requester_destination_cidrs) or list(acc_facts.cidrs)
        accepter_destinations = list(draft.accepter_destination_cidrs) or list(req_facts.cidrs)
        plan = _make_plan(
            requester,
            accepter,
            requester_tables,
            accepter_tables,
            requester_destinations,
            accepter_destinations,
            draft.allow_dns_resolution,
        )
    return Evaluation(
        results=results,
        requester=requester,
        accepter=accepter,
        requester_route_tables=requester_tables,
        accepter_route_tables=accepter_tables,
        requester_destination_cidrs=requester_destinations,
        accepter_destination_cidrs=accepter_destinations,
        plan=plan,
    )


def _make_plan(
    requester: Vpc,
    accepter: Vpc,
    requester_tables: list[str],
    accepter_tables: list[str],
    requester_destinations: list[str],
    accepter_destinations: list[str],
    allow_dns: bool,
) -> PeeringPlan:
    routes: list[RouteSpec] = build_routes(
        side="requester",
        account_id=requester.account.account_id,
        region=requester.region,
        route_table_ids=requester_tables,
        destinations=requester_destinations,
    ) + build_routes(
        side="accepter",
        account_id=accepter.account.account_id,
        region=accepter.region,
        route_table_ids=accepter_tables,
        destinations=accepter_destinations,
    )
    return PeeringPlan(
        requester_account=requester.account.account_id,
        requester_region=requester.region,
        requester_vpc_id=requester.vpc_id,
        accepter_account=accepter.account.account_id,
        accepter_region=accepter.region,
        accepter_vpc_id=accepter.vpc_id,
        allow_dns_resolution=allow_dns,
        routes=tuple(routes),
    )


def plan_for(request: PeeringRequest) -> PeeringPlan:
    """The plan a stored request carries: its routes as recorded (`ManagedRoute`), in plan order.

    For a filed request they are the tables and destinations fixed when it was filed; for an
    adopted one, the routes found in AWS that target its connection.
    """
    requester, accepter = request.requester_vpc, request.accepter_vpc
    sides = {
        "requester": (requester.account.account_id, requester.region),
        "accepter": (accepter.account.account_id, accepter.region),
    }
    return PeeringPlan(
        requester_account=requester.account.account_id,
        requester_region=requester.region,
        requester_vpc_id=requester.vpc_id,
        accepter_account=accepter.account.account_id,
        accepter_region=accepter.region,
        accepter_vpc_id=accepter.vpc_id,
        allow_dns_resolution=request.allow_dns_resolution,
        routes=tuple(
            RouteSpec(row.side, *sides[row.side], row.route_table_id, row.destination)
            for row in ManagedRoute.objects.filter(request=request).order_by("id")
        ),
    )


def record_planned_routes(request: PeeringRequest, plan: PeeringPlan) -> None:
    """The request's routes, as its plan has them: claimed now, made by the saga later."""
    now = timezone.now()
    ManagedRoute.objects.bulk_create(
        ManagedRoute(
            request=request,
            side=spec.side,
            route_table_id=spec.route_table_id,
            destination=spec.destination,
            state=ManagedRoute.State.PLANNED,
            changed_at=now,
        )
        for spec in plan.routes
    )


def draft_of(request: PeeringRequest) -> PeeringDraft:
    return PeeringDraft(
        requester_vpc=request.requester_vpc.vpc_id,
        accepter_vpc=request.accepter_vpc.vpc_id,
        requester_route_tables=request.requester_route_tables,
        accepter_route_tables=request.accepter_route_tables,
        requester_destination_cidrs=request.requester_destination_cidrs,
        accepter_destination_cidrs=request.accepter_destination_cidrs,
        allow_dns_resolution=request.allow_dns_resolution,
        justification=request.justification,
        external_ref=request.external_ref,
    )


class ChecksFailed(PortalError):
    """Filing or deciding refused by the checks; carries every result, as the API and pages show them."""

    def __init__(self, results: list[rules.CheckResult], evaluation: Evaluation | None = None) -> None:
        failed = rules.failures(results)
        super().__init__(
            failed[0].code if failed else "checks_failed",
            "; ".join(r.detail for r in failed),
            checks=[r.as_dict() for r in results],
        )
        self.results = results
        self.evaluation = evaluation  # the checks and plan as evaluated, for pages that show them
