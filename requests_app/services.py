"""Use cases: one function each, keyword-only, taking the actor.

Each runs in one transaction: check permission and transition, change the row, append the audit
event, and enqueue worker tasks only once the transaction has committed.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from requests_app import audit, events, inventory, netguard, network, permissions, selectors
from requests_app.aws.gateway import AwsError, get_gateway
from requests_app.domain import checks as rules
from requests_app.domain import cidrs, text
from requests_app.domain.plan import PeeringPlan, RouteSpec, build_routes
from requests_app.domain.status import (
    Action,
    ActionNotAllowed,
    InvalidTransition,
    Status,
    check_action,
    check_transition,
)
from requests_app.lease import pickup_deadline
from requests_app.models import (
    AwsAccount,
    Department,
    ManagedRoute,
    ObservedPeering,
    PeeringRequest,
    Vpc,
    VpcCidr,
)
from requests_app.network import HOLDS_PAIR, LIVE_AWS_STATES

logger = logging.getLogger(__name__)

AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
MAX_VPC_BLOCK_SIZE = 2**16  # AWS allows VPC CIDR blocks from /16 to /28


class PortalError(Exception):
    """A refusal with a machine-readable code, an HTTP status and a message for people."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 400,
        attr: str | None = None,
        checks: list[dict[str, Any]] | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.status = status
        self.attr = attr
        self.checks = checks
        super().__init__(detail)


class ChecksFailed(PortalError):
    def __init__(self, results: list[rules.CheckResult], evaluation: Evaluation | None = None) -> None:
        failed = rules.failures(results)
        super().__init__(
            failed[0].code if failed else "checks_failed",
            "; ".join(r.detail for r in failed),
            checks=[r.as_dict() for r in results],
        )
        self.results = results
        self.evaluation = evaluation  # the checks and plan as evaluated, for pages that show them


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
    def checks(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.results]

    @property
    def operations(self) -> list[dict[str, str]]:
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


class ViewerNamer(network.Namer):
    """Names in check details for one viewer: a request they cannot open, or a VPC they may not
    learn about, is described without its id or name."""

    needs_owners = True

    def __init__(self, viewer: Any, department_ids: set[int]) -> None:
        self.viewer = viewer
        self.department_ids = department_ids

    def request(self, request: PeeringRequest) -> str:
        if permissions.can_view_request(self.viewer, request):
            return f"request {request.pk}"
        return "a request of another department"

    def vpc(self, vpc: Vpc) -> str:
        return "a VPC of another department" if _hidden_from(self.viewer, vpc, self.department_ids) else vpc.label


def _existing_peerings(
    vpc_a: str, vpc_b: str, *, exclude_request: Any = None, viewer: Any = None
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
            f"request {r.pk}"
            if viewer is None or permissions.can_view_request(viewer, r)
            else "a request of another department",
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


def _limits(account: AwsAccount) -> rules.Limits:
    defaults = rules.Limits()

    def pick(override: int | None, default: int) -> int:
        return default if override is None else override  # 0 is a real limit: none allowed

    return rules.Limits(
        peerings_per_vpc=pick(account.max_peerings_per_vpc, defaults.peerings_per_vpc),
        outstanding_per_account=pick(account.max_outstanding_requests, defaults.outstanding_per_account),
        routes_per_table=pick(account.max_routes_per_table, defaults.routes_per_table),
    )


def _vpc_peering_count(vpc: Vpc, exclude_request: Any) -> int:
    portal = PeeringRequest.objects.filter(Q(requester_vpc=vpc) | Q(accepter_vpc=vpc), status__in=network.HOLDING)
    if exclude_request is not None:
        portal = portal.exclude(pk=exclude_request)
    unmanaged = ObservedPeering.objects.filter(
        Q(requester_vpc_id=vpc.vpc_id) | Q(accepter_vpc_id=vpc.vpc_id), status="active", portal_request_id=""
    )
    return portal.count() + unmanaged.count()


def _outstanding_count(account: AwsAccount, exclude_request: Any) -> int:
    in_flight = PeeringRequest.objects.filter(
        requester_vpc__account=account, status__in=[Status.APPROVED, Status.PROVISIONING]
    )
    if exclude_request is not None:
        in_flight = in_flight.exclude(pk=exclude_request)
    unmanaged = ObservedPeering.objects.filter(
        requester_account_id=account.account_id, status="pending-acceptance", portal_request_id=""
    )
    return in_flight.count() + unmanaged.count()


def _outstanding_counts(accounts: list[AwsAccount]) -> dict[int, int]:
    """`_outstanding_count` of each account, in two queries."""
    counts: dict[int, int] = dict.fromkeys((a.pk for a in accounts), 0)
    for account_pk in PeeringRequest.objects.filter(
        requester_vpc__account__in=accounts, status__in=[Status.APPROVED, Status.PROVISIONING]
    ).values_list("requester_vpc__account_id", flat=True):
        counts[account_pk] += 1
    by_number = {a.account_id: a.pk for a in accounts}
    for number in ObservedPeering.objects.filter(
        requester_account_id__in=list(by_number), status="pending-acceptance", portal_request_id=""
    ).values_list("requester_account_id", flat=True):
        counts[by_number[number]] += 1
    return counts


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


def _hidden_from(viewer: Any, vpc: Vpc, department_ids: set[int]) -> bool:
    """A VPC the caller may not learn about: not their department's, not one they own, no owners."""
    if permissions.is_admin(viewer) or vpc.account.department_id in department_ids:
        return False
    return not vpc.owners.all() and vpc.pk not in permissions.owned_vpc_ids(viewer)


def _visible_owner_finder(viewer: Any, department_ids: set[int]) -> Any:
    def find(cidr: str) -> rules.VpcFacts | None:
        owner = find_vpc_owning(cidr)
        if owner is None:
            return None
        vpc = selectors.vpc_with_facts(owner.vpc_id)
        return owner if vpc is not None and not _hidden_from(viewer, vpc, department_ids) else None

    return find


def peering_request_evaluate(
    *, draft: PeeringDraft, department_ids: set[int], viewer: Any = None, exclude_request: Any = None
) -> Evaluation:
    """Run every rule for a would-be request; creates nothing.

    With a `viewer` (the API and the form), the answer reveals nothing the viewer may not see: a
    requester VPC of another department stops the checks with `not_your_vpc` and no details, and
    a peer VPC they cannot see is `vpc_not_found`. Approval and provisioning pass no viewer.
    """
    draft = canonical_draft(draft)
    requester = selectors.vpc_with_facts(draft.requester_vpc)
    accepter = selectors.vpc_with_facts(draft.accepter_vpc)
    # Another department's VPC and one that does not exist get the same answer, so ids cannot be
    # probed; only a VPC of the caller's own department that left AWS is named as not found.
    if viewer is not None and (
        (requester is not None and requester.account.department_id not in department_ids)
        or (requester is None and not selectors.vpc_of_departments_exists(draft.requester_vpc, department_ids))
    ):
        refusal = rules.CheckResult(
            "not_your_vpc",
            rules.CheckStatus.FAIL,
            f"{draft.requester_vpc} is not one of your department's VPCs",
            "requester_vpc",
        )
        return Evaluation([refusal], None, None, [], [], [], [], None)
    if viewer is not None and accepter is not None and _hidden_from(viewer, accepter, department_ids):
        accepter = None
    requester_tables = list(draft.requester_route_tables) or (
        [rt.route_table_id for rt in requester.route_tables.all()] if requester else []
    )
    accepter_tables = list(draft.accepter_route_tables) or (
        [rt.route_table_id for rt in accepter.route_tables.all()] if accepter else []
    )
    extra: dict[str, Any] = {}
    routes: dict[str, tuple[rules.RouteFacts, ...]] | None = None
    if requester and accepter:
        namer = network.PLAIN if viewer is None else ViewerNamer(viewer, department_ids)
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
                draft.requester_vpc, draft.accepter_vpc, exclude_request=exclude_request, viewer=viewer
            ),
            "requester_limits": _limits(requester.account),
            "accepter_limits": _limits(accepter.account),
            "usage": rules.Usage(
                requester_vpc_peerings=_vpc_peering_count(requester, exclude_request),
                accepter_vpc_peerings=_vpc_peering_count(accepter, exclude_request),
                requester_outstanding=_outstanding_count(requester.account, exclude_request),
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
            find_vpc_owning=find_vpc_owning if viewer is None else _visible_owner_finder(viewer, department_ids),
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


# --- the request lifecycle ------------------------------------------------------------------
def get_visible_request(actor: Any, request_id: Any) -> PeeringRequest:
    """The request if the actor may see it; otherwise 404, so ids cannot be probed."""
    try:
        pk = uuid.UUID(str(request_id))
    except ValueError:
        pk = None
    request = selectors.requests_visible_to(actor).filter(pk=pk).first() if pk else None
    if request is None:
        raise PortalError("not_found", "No such peering request.", status=404)
    return request


def request_transition(
    request: PeeringRequest,
    target: Status,
    *,
    actor: Any = None,
    actor_label: str | None = None,
    action: str,
    message: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> PeeringRequest:
    """Move `request` to `target` if it is still in the state we read; audit it in the same transaction.

    The conditional update is the lock: of two approvers (or two workers) only one matches.
    """
    current = request.status
    try:
        check_transition(current, target)
    except InvalidTransition as exc:
        raise PortalError("invalid_transition", str(exc), status=409) from None
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                updated = PeeringRequest.objects.filter(pk=request.pk, status=current).update(
                    status=target, updated_at=now, **fields
                )
        except IntegrityError:
            other = PeeringRequest.objects.filter(HOLDS_PAIR, pair_key=request.pair_key).exclude(pk=request.pk).first()
            raise PortalError(
                "duplicate_peering",
                f"{request.requester_vpc.label} and {request.accepter_vpc.label} already have another "
                f"peering ({f'request {other.pk}, {other.status}' if other else 'another request'}); "
                "two VPCs can have only one",
                status=409,
            ) from None
        if updated != 1:
            fresh = PeeringRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first()
            raise PortalError(
                "invalid_transition",
                f"the request changed while you were acting: it is now {fresh}, not {current}",
                status=409,
            )
        request.status = target
        request.updated_at = now
        for name, value in fields.items():
            setattr(request, name, value)
        audit.record(
            action=action,
            actor=actor,
            actor_label=actor_label,
            request=request,
            from_status=current,
            to_status=target,
            message=message,
            data=data,
        )
        events.status_changed(request, target, message, action=action)
    return request


def _queued() -> dict[str, Any]:
    """Fields for a request whose work is being queued: nobody works on it yet, and it must be
    picked up within a lease, or the sweeper sends it again (the message may be lost)."""
    return {"lease_owner": "", "lease_expires_at": pickup_deadline()}


def _enqueue_on_commit(task_name: str, request_id: Any) -> None:
    """Send work to the broker after commit; if the broker is down the sweeper sends it later."""

    def send() -> None:
        from requests_app import tasks

        try:
            getattr(tasks, task_name).delay(str(request_id))
        except Exception:
            logger.exception("could not enqueue %s for %s; the sweeper will retry", task_name, request_id)

    transaction.on_commit(send)


def peering_request_submit(*, actor: Any, draft: PeeringDraft) -> PeeringRequest:
    _clean_text(draft.justification, "justification")
    _clean_line(draft.external_ref, "external_ref", max_length=text.MAX_LINE)
    evaluation = peering_request_evaluate(draft=draft, department_ids=permissions.department_ids(actor), viewer=actor)
    if not evaluation.ok:
        raise ChecksFailed(evaluation.results, evaluation)
    assert evaluation.requester and evaluation.accepter
    with transaction.atomic():
        try:
            with transaction.atomic():
                request = PeeringRequest.objects.create(
                    requester_vpc=evaluation.requester,
                    accepter_vpc=evaluation.accepter,
                    pair_key=PeeringRequest.make_pair_key(draft.requester_vpc, draft.accepter_vpc),
                    requester_route_tables=evaluation.requester_route_tables,
                    accepter_route_tables=evaluation.accepter_route_tables,
                    requester_destination_cidrs=evaluation.requester_destination_cidrs,
                    accepter_destination_cidrs=evaluation.accepter_destination_cidrs,
                    allow_dns_resolution=draft.allow_dns_resolution,
                    justification=draft.justification,
                    external_ref=draft.external_ref,
                    requested_by=actor,
                    department=evaluation.requester.account.department,
                    checks=evaluation.checks,
                    plan=evaluation.operations,
                )
                assert evaluation.plan is not None
                record_planned_routes(request, evaluation.plan)
        except IntegrityError:
            # Another request for this pair committed between our check and our insert.
            raise ChecksFailed(
                peering_request_evaluate(
                    draft=draft, department_ids=permissions.department_ids(actor), viewer=actor
                ).results
            ) from None
        audit.record(
            action="request.submitted",
            actor=actor,
            request=request,
            to_status=Status.PENDING_APPROVAL,
            message=draft.justification,
            data={"external_ref": draft.external_ref, "checks": evaluation.checks},
        )
        events.request_filed(request)
    return request


def lock_vpcs(request: PeeringRequest) -> None:
    """Serialise decisions that touch the same VPCs until the transaction ends.

    Two approvals of overlapping spokes of one hub would each see the other still pending (a
    warning) and both pass; holding both VPC rows makes the second wait for the first and then
    see it approved.
    """
    list(Vpc.objects.select_for_update().filter(pk__in=[request.requester_vpc_id, request.accepter_vpc_id]))


def peering_request_approve(*, actor: Any, request_id: Any, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_decide(actor, request), self_check=request.requested_by_id == actor.pk)
        _require_action(Action.APPROVE, request)
        comment = _clean_text(comment, "comment")
        lock_vpcs(request)
        # The world may have changed since filing; approve only what can still work.
        evaluation = peering_request_evaluate(
            draft=draft_of(request), department_ids={request.department_id}, exclude_request=request.pk
        )
        if not evaluation.ok:
            raise ChecksFailed(evaluation.results)
        request = request_transition(
            request,
            Status.APPROVED,
            actor=actor,
            action="request.approved",
            message=comment,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_comment=comment,
            checks=evaluation.checks,
            **_queued(),
        )
        _enqueue_on_commit("provision_peering_request", request.pk)
    return request


def peering_request_reject(*, actor: Any, request_id: Any, comment: str) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_decide(actor, request), self_check=request.requested_by_id == actor.pk)
        _require_action(Action.REJECT, request)
        comment = _clean_text(comment, "comment")
        if not comment.strip():
            raise PortalError("comment_required", "Say why the request is rejected.", attr="comment")
        return request_transition(
            request,
            Status.REJECTED,
            actor=actor,
            action="request.rejected",
            message=comment,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_comment=comment,
        )


def peering_request_cancel(*, actor: Any, request_id: Any, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_cancel(actor, request))
        _require_action(Action.CANCEL, request)
        comment = _clean_text(comment, "comment")
        return request_transition(request, Status.CANCELLED, actor=actor, action="request.cancelled", message=comment)


def peering_request_retry(*, actor: Any, request_id: Any) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_operate(actor, request))
        _require_action(Action.RETRY, request)
        target = Status.DECOMMISSIONING if request.failed_operation == "decommission" else Status.APPROVED
        request = request_transition(
            request,
            target,
            actor=actor,
            action="request.retried",
            message=request.failure_reason,
            failure_reason="",
            failed_operation="",
            **_queued(),
        )
        _enqueue_on_commit(
            "decommission_peering_request" if target == Status.DECOMMISSIONING else "provision_peering_request",
            request.pk,
        )
    return request


def peering_request_decommission(*, actor: Any, request_id: Any, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_operate(actor, request))
        _require_action(Action.DECOMMISSION, request)
        comment = _clean_text(comment, "comment")
        request = request_transition(
            request,
            Status.DECOMMISSIONING,
            actor=actor,
            action="request.decommission_requested",
            message=comment,
            **_queued(),
        )
        _enqueue_on_commit("decommission_peering_request", request.pk)
    return request


def peering_request_repair(*, actor: Any, request_id: Any) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        _require(permissions.why_not_repair(actor, request))
        _require_action(Action.REPAIR, request)
        audit.record(action="request.repair_requested", actor=actor, request=request, data={"drift": request.drift})
        _enqueue_on_commit("repair_peering_request", request.pk)
    return request


def _require(reason: str | None, *, self_check: bool = False) -> None:
    if reason:
        raise PortalError("self_approval" if self_check else "permission_denied", reason, status=403)


def full_clean(obj: models.Model) -> None:
    """The model's own validation, as a refusal with a code and the field: never a server error."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.error_dict.items()))
        code = errors[0].code or "invalid"
        detail = f"{field}: {' '.join(m for e in errors for m in e.messages)}"
        if code == "unique":
            raise PortalError("already_exists", detail, status=409, attr=field) from None
        raise PortalError(code if code != "invalid" else f"invalid_{field}", detail, attr=field) from None


def _require_action(action: Action, request: PeeringRequest) -> None:
    try:
        check_action(action, request.status)
    except ActionNotAllowed as exc:
        raise PortalError("invalid_transition", str(exc), status=409) from None


def _clean_text(value: str, attr: str, *, max_length: int = text.MAX_TEXT) -> str:
    """Free text (comments, justifications) as every way in must take it: refused, never cut."""
    problem = text.text_problem(value, max_length=max_length)
    if problem:
        raise PortalError(f"invalid_{attr}", f"{attr.replace('_', ' ')}: {problem}", attr=attr)
    return value


def _clean_line(value: str, attr: str, *, max_length: int) -> str:
    """A single-line field (a ticket reference, a name): it ends up in e-mail headers and logs."""
    problem = text.line_problem(value, max_length=max_length)
    if problem:
        raise PortalError(f"invalid_{attr}", f"{attr.replace('_', ' ')}: {problem}", attr=attr)
    return value


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


# --- accounts and inventory ------------------------------------------------------------------
def aws_account_check(*, name: str, regions: list[str]) -> None:
    """The rules an account's name and regions must meet, wherever it is registered or changed."""
    _clean_line(name, "name", max_length=text.MAX_LINE)
    listed = regions if isinstance(regions, list) else [regions]
    bad_regions = [r for r in listed if not isinstance(r, str) or not AWS_REGION.fullmatch(r)]
    if bad_regions or not listed:
        raise PortalError(
            "invalid_region",
            f"regions must be AWS region names like us-east-1, not {', '.join(map(repr, bad_regions)) or 'none'}",
            attr="regions",
        )


def aws_account_register(
    *, actor: Any, account_id: str, name: str, department: str, role_arn: str, regions: list[str]
) -> AwsAccount:
    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators register AWS accounts.", status=403)
    aws_account_check(name=name, regions=regions)
    dept = Department.objects.filter(slug=department).first()
    if dept is None:
        raise PortalError("not_found", f"No department {department!r}.", attr="department")
    with transaction.atomic():
        account = AwsAccount(account_id=account_id, name=name, department=dept, role_arn=role_arn, regions=regions)
        full_clean(account)
        account.save()
        audit.record(
            action="account.registered",
            actor=actor,
            account_id=account_id,
            data={"name": name, "department": department, "role_arn": role_arn, "regions": regions},
        )
    return account


def aws_account_sync(*, actor: Any, account_id: str) -> dict[str, object]:
    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators sync AWS accounts.", status=403)
    account = AwsAccount.objects.filter(account_id=account_id).first()
    if account is None:
        raise PortalError("not_found", f"No AWS account {account_id} is registered.", status=404)
    try:
        report = inventory.sync_account(account)
    except AwsError as exc:
        audit.record(
            action="account.sync_failed",
            actor=actor,
            account_id=account_id,
            result="error",
            error_code=exc.code,
            operation=exc.operation,
            message=exc.message,
        )
        raise PortalError("aws_error", f"Reading account {account_id} failed: {exc}", status=502) from None
    audit.record(action="account.synced", actor=actor, account_id=account_id, result="ok", data=report.as_dict())
    return report.as_dict()


# --- the network: capacity and adoption ----------------------------------------------------------
def vpc_capacity(*, actor: Any, vpc_id: str) -> network.Capacity:
    """Headroom of a VPC the actor may see against each quota, counting live and pending work."""
    vpc = selectors.vpcs_visible_to(actor).filter(vpc_id=vpc_id).first()
    if vpc is None:
        raise PortalError("not_found", f"No VPC {vpc_id} that you can see.", status=404)
    (capacity,) = capacities([vpc])
    return capacity


def capacities(vpcs: list[Vpc]) -> list[network.Capacity]:
    """Headroom of each VPC, in a fixed number of queries (the pages show every hub's)."""
    accounts = {v.account_id: v.account for v in vpcs}
    return network.capacities(
        vpcs,
        limits={pk: _limits(account) for pk, account in accounts.items()},
        outstanding=_outstanding_counts(list(accounts.values())),
    )


def adoptable_by(actor: Any, observed: list[ObservedPeering]) -> set[str]:
    """The connections among `observed` that `actor` may adopt (to offer the action on pages)."""
    if permissions.is_admin(actor):
        return {o.connection_id for o in observed}
    hubs = set(
        Vpc.objects.filter(is_services_vpc=True, pk__in=permissions.owned_vpc_ids(actor)).values_list(
            "vpc_id", flat=True
        )
    )
    return {o.connection_id for o in observed if {o.requester_vpc_id, o.accepter_vpc_id} & hubs}


def _not_adoptable(reason: str) -> PortalError:
    return PortalError("not_adoptable", reason, status=409)


def observed_peering_adopt(
    *, actor: Any, connection_id: str, justification: str, external_ref: str = ""
) -> PeeringRequest:
    """Take over a peering made outside the portal: from now on drift, repair and decommission
    work on it like any other.

    Requester and accepter, DNS options and the routes that target the connection are read
    from AWS now, not taken from the last sync or guessed. Owners of the Services VPC in the
    peering (the hub side), or an admin, may adopt it.
    """
    _clean_text(justification, "justification")
    _clean_line(external_ref, "external_ref", max_length=text.MAX_LINE)
    seen = (
        selectors.observed_peerings_visible_to(actor, include_managed=True).filter(connection_id=connection_id).first()
    )
    if seen is None:
        raise PortalError("not_found", f"No peering connection {connection_id} that you can see.", status=404)
    vpcs = {
        v.vpc_id: v
        for v in Vpc.objects.filter(vpc_id__in=[seen.requester_vpc_id, seen.accepter_vpc_id], present_in_aws=True)
        .select_related("account__department")
        .prefetch_related("route_tables")
    }
    hubs = [v for v in vpcs.values() if v.is_services_vpc and v.pk in permissions.owned_vpc_ids(actor)]
    if not permissions.is_admin(actor) and not hubs:
        raise PortalError(
            "permission_denied",
            "Only the owners of the Services VPC in this peering, or an admin, can adopt it.",
            status=403,
        )
    outside = [v for v in (seen.requester_vpc_id, seen.accepter_vpc_id) if v not in vpcs]
    if outside:
        raise _not_adoptable(f"{', '.join(outside)} is not in the portal's inventory; register and sync its account")
    holder = PeeringRequest.objects.filter(HOLDS_PAIR, aws_peering_connection_id=connection_id).first()
    if holder is None and seen.portal_request_id:
        holder = PeeringRequest.objects.filter(
            pk=_uuid_or_none(seen.portal_request_id), status__in=[Status.APPROVED, Status.PROVISIONING]
        ).first()
    if holder is not None:
        raise _not_adoptable(f"{connection_id} is already managed by request {holder.pk} ({holder.status})")
    requester_hint = vpcs[seen.requester_vpc_id]
    gateway = get_gateway()
    try:
        info = gateway.describe_peering(
            inventory.account_ref(requester_hint.account), requester_hint.region, connection_id
        )
    except AwsError as exc:
        raise PortalError("aws_error", f"Reading {connection_id} from AWS failed: {exc}", status=502) from None
    if info is None or info.status != "active":
        state = info.status if info else "gone"
        raise _not_adoptable(f"{connection_id} is {state} in AWS; only an active peering can be adopted")
    if info.tag(settings.PEERING_TAG_KEY):
        tagged = PeeringRequest.objects.filter(pk=_uuid_or_none(info.tag(settings.PEERING_TAG_KEY))).first()
        if tagged is not None and tagged.status not in (Status.DECOMMISSIONED, Status.REJECTED, Status.CANCELLED):
            raise _not_adoptable(f"{connection_id} was made by the portal for request {tagged.pk} ({tagged.status})")
    # Sides as AWS has them: the inventory could have them the wrong way round only if it is stale.
    requester, accepter = vpcs.get(info.requester_vpc_id), vpcs.get(info.accepter_vpc_id)
    if requester is None or accepter is None:
        raise _not_adoptable(f"{connection_id} now joins VPCs the portal does not know; sync their accounts")
    routes: list[tuple[str, str, str]] = []  # (side, route table, destination)
    try:
        for side, vpc in (("requester", requester), ("accepter", accepter)):
            for table in gateway.describe_route_tables(inventory.account_ref(vpc.account), vpc.region):
                if table.vpc_id == vpc.vpc_id:
                    routes += [
                        (side, table.route_table_id, r.destination) for r in table.routes if r.target == connection_id
                    ]
    except AwsError as exc:
        raise PortalError("aws_error", f"Reading the route tables from AWS failed: {exc}", status=502) from None

    def tables_and_destinations(side: str) -> tuple[list[str], list[str]]:
        mine = [(t, d) for s_, t, d in routes if s_ == side]
        return list(dict.fromkeys(t for t, _ in mine)), list(dict.fromkeys(d for _, d in mine))

    requester_tables, requester_destinations = tables_and_destinations("requester")
    accepter_tables, accepter_destinations = tables_and_destinations("accepter")
    dns = info.requester_dns_resolution and info.accepter_dns_resolution
    try:
        with transaction.atomic():
            request = PeeringRequest.objects.create(
                status=Status.ACTIVE,
                adopted=True,
                requester_vpc=requester,
                accepter_vpc=accepter,
                pair_key=PeeringRequest.make_pair_key(requester.vpc_id, accepter.vpc_id),
                requester_route_tables=requester_tables,
                accepter_route_tables=accepter_tables,
                requester_destination_cidrs=requester_destinations,
                accepter_destination_cidrs=accepter_destinations,
                allow_dns_resolution=dns,
                justification=justification,
                external_ref=external_ref,
                requested_by=actor,
                department=requester.account.department,
                aws_peering_connection_id=connection_id,
            )
            now = timezone.now()
            ManagedRoute.objects.bulk_create(
                ManagedRoute(
                    request=request,
                    side=side,
                    route_table_id=table,
                    destination=destination,
                    state=ManagedRoute.State.CREATED,
                    changed_at=now,
                )
                for side, table, destination in routes
            )
            ObservedPeering.objects.filter(connection_id=connection_id).update(portal_request_id=str(request.pk))
            audit.record(
                action="request.adopted",
                actor=actor,
                request=request,
                to_status=Status.ACTIVE,
                message=justification,
                data={
                    "connection_id": connection_id,
                    "external_ref": external_ref,
                    "routes": [{"side": s_, "route_table_id": t, "destination": d} for s_, t, d in routes],
                    "dns_resolution": {
                        "requester": info.requester_dns_resolution,
                        "accepter": info.accepter_dns_resolution,
                    },
                },
            )
            events.request_adopted(request)
    except IntegrityError:
        other = PeeringRequest.objects.filter(
            HOLDS_PAIR, pair_key=PeeringRequest.make_pair_key(requester.vpc_id, accepter.vpc_id)
        ).first()
        raise _not_adoptable(
            f"{requester.label} and {accepter.label} already have a request in the portal"
            + (f" (request {other.pk}, {other.status})" if other else "")
            + "; decide or cancel it first"
        ) from None
    return request


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- webhooks -------------------------------------------------------------------------------
def refuse_private_destination(url: str) -> None:
    """Webhooks go to globally routable addresses only (unless WEBHOOK_ALLOW_PRIVATE): checked at
    registration and on every change here, and again, at connect time, on every attempt."""
    try:
        netguard.check_url(url)
    except netguard.DestinationRefused as exc:
        code = "invalid_url" if exc.code == "unresolvable" else exc.code
        raise PortalError(code, exc.detail, attr="url") from None


def _check_event_types(events: list[str]) -> None:
    from requests_app.webhooks import EVENT_TYPES, WILDCARDS

    unknown = sorted(set(events) - set(EVENT_TYPES) - set(WILDCARDS))
    if unknown:
        raise PortalError(
            "unknown_event_type",
            f"no such event type: {', '.join(unknown)}; choose from {', '.join(WILDCARDS + EVENT_TYPES)}",
            attr="events",
        )


def webhook_check(*, url: str | None = None, events: list[str] | None = None) -> None:
    """The rules a webhook's URL and events must meet, wherever it is registered or changed."""
    if events is not None:
        _check_event_types(events)
    if url is not None:
        refuse_private_destination(url)


def webhook_register(*, actor: Any, url: str, events: list[str], active: bool = True) -> Any:
    from requests_app.models import Webhook
    from requests_app.webhooks import new_secret

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators register webhooks.", status=403)
    webhook_check(url=url, events=events)
    with transaction.atomic():
        hook = Webhook.objects.create(url=url, events=events, active=active, created_by=actor, secret=new_secret())
        audit.record(action="webhook.registered", actor=actor, data={"url": netguard.redacted(url), "events": events})
    return hook


def webhook_update(*, actor: Any, webhook_id: int, **changes: Any) -> Any:
    """Change an endpoint's URL, events or active flag (admins); the secret never changes here."""
    from requests_app.models import Webhook

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators change webhooks.", status=403)
    webhook_check(url=changes.get("url"), events=changes.get("events"))
    with transaction.atomic():
        hook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
        if hook is None:
            raise PortalError("not_found", "No such webhook.", status=404)
        for name, value in changes.items():
            setattr(hook, name, value)
        hook.save(update_fields=list(changes))
        shown = {**changes, **({"url": netguard.redacted(changes["url"])} if "url" in changes else {})}
        audit.record(action="webhook.changed", actor=actor, data={"webhook": hook.pk, **shown})
    return hook


def webhook_resend(*, actor: Any, webhook_id: int, message_id: str) -> Any:
    """Send a delivery again, with the same webhook-id (admins)."""
    from requests_app import webhooks
    from requests_app.models import WebhookDelivery

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators resend webhooks.", status=403)
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_related("webhook")
            .filter(webhook_id=webhook_id, message_id=message_id)
            .first()
        )
        if delivery is None:
            raise PortalError("not_found", "No such delivery.", status=404)
        if not delivery.webhook.active:
            raise PortalError(
                "webhook_inactive", "This endpoint is switched off; switch it on before resending.", status=409
            )
        webhooks.resend(delivery)
        audit.record(
            action="webhook.resent",
            actor=actor,
            request=delivery.request,
            data={"webhook": webhook_id, "message_id": message_id, "event_type": delivery.event_type},
        )
    delivery.refresh_from_db()
    return delivery


# --- API tokens ------------------------------------------------------------------------------
def api_token_create(*, actor: Any, name: str, read_only: bool = False, expires_at: Any = None) -> tuple[Any, str]:
    """A named token for the caller; the key is returned once and only its hash is kept."""
    from requests_app import tokens

    _clean_line(name, "name", max_length=text.MAX_LINE)
    if expires_at is not None and expires_at <= timezone.now():
        raise PortalError("invalid_expiry", "expires_at must be in the future.", attr="expires_at")
    with transaction.atomic():
        try:
            issued = tokens.rotate(actor, name, read_only=read_only, expires_at=expires_at)
        except tokens.TokenLimitReached as exc:
            raise PortalError("token_limit_reached", str(exc), status=409) from exc
        token, key = issued.token, issued.key
        for old in issued.replaced:  # the user's live token of the same name, replaced by this one
            audit.record(
                action="token.revoked",
                actor=actor,
                data={
                    "token": old.pk,
                    "name": old.name,
                    "prefix": old.prefix,
                    "owner": actor.get_username(),
                    "replaced_by": token.pk,
                },
            )
        audit.record(
            action="token.created",
            actor=actor,
            data={
                "token": token.pk,
                "name": name,
                "prefix": token.prefix,
                "read_only": read_only,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, key


def api_token_revoke(*, actor: Any, token_id: Any) -> Any:
    """Revoke one of your tokens (administrators: anyone's). Others' tokens answer 404."""
    from requests_app.models import ApiToken

    with transaction.atomic():
        tokens = ApiToken.objects.select_for_update()
        if not permissions.is_admin(actor):
            tokens = tokens.filter(user=actor)
        token = tokens.filter(pk=token_id).first() if str(token_id).isdigit() else None
        if token is None:
            raise PortalError("not_found", "No such token.", status=404)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record(
                action="token.revoked",
                actor=actor,
                data={"token": token.pk, "name": token.name, "prefix": token.prefix, "owner": token.user.username},
            )
    return token
