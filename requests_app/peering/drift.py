"""Compare AWS with what the portal made, for active peerings, and record any drift.

The reconciler only looks and records: it never recreates a deleted connection and never
changes a route. An owner of the accepter VPC decides, with the repair action, to recreate
missing routes.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.gateway import AwsGateway, get_gateway
from requests_app.core import logs
from requests_app.domain.status import Status
from requests_app.inventory.sync import account_ref
from requests_app.models import Drift, Finding, PeeringRequest
from requests_app.peering import news, preflight

logger = logging.getLogger(__name__)
LABEL = "reconciler"


def findings_for(request: PeeringRequest, gateway: AwsGateway) -> list[Finding]:
    """What differs in AWS from what the portal made for `request`."""
    requester = (account_ref(request.requester_vpc.account), request.requester_vpc.region)
    accepter = (account_ref(request.accepter_vpc.account), request.accepter_vpc.region)
    connection_id = request.aws_peering_connection_id
    info = gateway.describe_peering(*requester, connection_id)
    if info is None or info.is_gone:
        state = info.status if info else "missing"
        return [
            {
                "kind": "connection_gone",
                "detail": f"peering connection {connection_id} is {state} in AWS; the portal will not recreate it",
            }
        ]
    findings: list[Finding] = []
    if request.allow_dns_resolution:
        for side, enabled in (("requester", info.requester_dns_resolution), ("accepter", info.accepter_dns_resolution)):
            if not enabled:
                findings.append(
                    {
                        "kind": "dns_option_changed",
                        "detail": f"DNS resolution from the remote VPC was turned off on the {side} side",
                    }
                )
    sides = {"requester": requester, "accepter": accepter}
    routes = preflight.plan_for(request).routes
    for side in ("requester", "accepter"):
        wanted = [r for r in routes if r.side == side]
        if not wanted:
            continue
        ids = sorted({r.route_table_id for r in wanted})
        tables = {t.route_table_id: t for t in gateway.describe_route_tables(*sides[side], ids, skip_missing=True)}
        gone: set[str] = set()
        for spec in wanted:
            table = tables.get(spec.route_table_id)
            if table is None:
                if spec.route_table_id not in gone:
                    gone.add(spec.route_table_id)
                    findings.append(
                        {
                            "kind": "route_table_gone",
                            "detail": f"route table {spec.route_table_id} no longer exists in AWS",
                            "route_table_id": spec.route_table_id,
                        }
                    )
                continue
            route = table.route_to(spec.destination)
            if route is None:
                findings.append(
                    {
                        "kind": "route_missing",
                        "detail": f"{spec.route_table_id} has no route to {spec.destination}",
                        "route_table_id": spec.route_table_id,
                        "destination": spec.destination,
                    }
                )
            elif route.target != connection_id:
                findings.append(
                    {
                        "kind": "route_elsewhere",
                        "detail": f"{spec.route_table_id} routes {spec.destination} to {route.target}, not {connection_id}",
                        "route_table_id": spec.route_table_id,
                        "destination": spec.destination,
                    }
                )
    return findings


def reconcile(request_id: uuid.UUID | str, gateway: AwsGateway | None = None) -> Drift | None:
    """Record the drift of one active request (or clear it); returns the drift now recorded."""
    with logs.bound(request_id):
        return _reconcile(request_id, gateway or get_gateway())


def _reconcile(request_id: uuid.UUID | str, gateway: AwsGateway) -> Drift | None:
    request = (
        PeeringRequest.objects.select_related("requester_vpc__account", "accepter_vpc__account")
        .filter(pk=request_id, status=Status.ACTIVE)
        .first()
    )
    if request is None or not request.aws_peering_connection_id:
        return None
    findings = findings_for(request, gateway)
    previous = request.drift.get("findings") if request.drift else None
    if findings == (previous or []):
        return request.drift
    drift: Drift | None = {"found_at": timezone.now().isoformat(), "findings": findings} if findings else None
    with transaction.atomic():
        updated = PeeringRequest.objects.filter(pk=request.pk, status=Status.ACTIVE).update(drift=drift)
        if updated:
            audit.record(
                action=AuditAction.DRIFT_FOUND if findings else AuditAction.DRIFT_CLEARED,
                actor_label=LABEL,
                request=request,
                message="; ".join(f["detail"] for f in findings) or "AWS matches the portal again",
                data={"findings": findings},
            )
            news.drift_changed(request, findings)
    if findings:
        logger.warning("drift on %s: %s", request.pk, findings)
    return drift


def active_request_ids() -> list[str]:
    """The peerings the reconciler looks at: every active one."""
    return [str(pk) for pk in PeeringRequest.objects.filter(status=Status.ACTIVE).values_list("pk", flat=True)]
