"""Adopting a peering made outside the portal: from then on it is managed like any other."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.gateway import get_gateway
from requests_app.aws.types import AwsError
from requests_app.core.errors import PortalError
from requests_app.core.validation import clean_line, clean_text
from requests_app.domain import text
from requests_app.domain.status import (
    Status,
)
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import sync
from requests_app.inventory.network import HOLDS_PAIR
from requests_app.models import ManagedRoute, ObservedPeering, PeeringRequest, Vpc
from requests_app.peering import news, permissions


def adoptable_by(actor: User, observed: list[ObservedPeering]) -> set[str]:
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
    *, actor: User, connection_id: str, justification: str, external_ref: str = ""
) -> PeeringRequest:
    """Take over a peering made outside the portal: from now on drift, repair and decommission
    work on it like any other.

    Requester and accepter, DNS options and the routes that target the connection are read
    from AWS now, not taken from the last sync or guessed. Owners of the Services VPC in the
    peering (the hub side), or an admin, may adopt it.
    """
    clean_text(justification, "justification")
    clean_line(external_ref, "external_ref", max_length=text.MAX_LINE)
    seen = (
        inventory_selectors.observed_peerings_visible_to(actor, include_managed=True)
        .filter(connection_id=connection_id)
        .first()
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
    portal_request_id = _uuid_or_none(seen.portal_request_id)
    if holder is None and portal_request_id is not None:
        holder = PeeringRequest.objects.filter(
            pk=portal_request_id, status__in=[Status.APPROVED, Status.PROVISIONING]
        ).first()
    if holder is not None:
        raise _not_adoptable(f"{connection_id} is already managed by request {holder.pk} ({holder.status})")
    requester_hint = vpcs[seen.requester_vpc_id]
    gateway = get_gateway()
    try:
        info = gateway.describe_peering(sync.account_ref(requester_hint.account), requester_hint.region, connection_id)
    except AwsError as exc:
        raise PortalError("aws_error", f"Reading {connection_id} from AWS failed: {exc}", status=502) from None
    if info is None or info.status != "active":
        state = info.status if info else "gone"
        raise _not_adoptable(f"{connection_id} is {state} in AWS; only an active peering can be adopted")
    tagged_id = _uuid_or_none(info.tag(settings.PEERING_TAG_KEY))
    if tagged_id is not None:
        tagged = PeeringRequest.objects.filter(pk=tagged_id).first()
        if tagged is not None and tagged.status not in (Status.DECOMMISSIONED, Status.REJECTED, Status.CANCELLED):
            raise _not_adoptable(f"{connection_id} was made by the portal for request {tagged.pk} ({tagged.status})")
    # Sides as AWS has them: the inventory could have them the wrong way round only if it is stale.
    requester, accepter = vpcs.get(info.requester_vpc_id), vpcs.get(info.accepter_vpc_id)
    if requester is None or accepter is None:
        raise _not_adoptable(f"{connection_id} now joins VPCs the portal does not know; sync their accounts")
    routes: list[tuple[str, str, str]] = []  # (side, route table, destination)
    try:
        for side, vpc in (("requester", requester), ("accepter", accepter)):
            for table in gateway.describe_route_tables(sync.account_ref(vpc.account), vpc.region):
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
                action=AuditAction.REQUEST_ADOPTED,
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
            news.request_adopted(request)
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
