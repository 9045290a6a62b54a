"""Read queries about the network: VPCs, hubs and peerings found in AWS, shaped for the pages and endpoints that use them."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Prefetch, Q, QuerySet

from requests_app.domain.status import Status
from requests_app.inventory.network import HOLDS_PAIR
from requests_app.models import ObservedPeering, PeeringRequest, RouteTable, Vpc, VpcCidr
from requests_app.peering import permissions


def _vpc_prefetch(prefix: str) -> list[Prefetch]:
    return [
        Prefetch(f"{prefix}cidr_blocks", queryset=VpcCidr.objects.order_by("-is_primary", "cidr")),
        Prefetch(f"{prefix}route_tables", queryset=RouteTable.objects.all()),
    ]


def vpcs_visible_to(user: User) -> QuerySet[Vpc]:
    """The caller's department's VPCs, the VPCs they own, and every VPC with owners (peer targets)."""
    qs = (
        Vpc.objects.select_related("account__department")
        .prefetch_related(*_vpc_prefetch(""), "owners")
        .filter(present_in_aws=True)
    )
    if permissions.is_admin(user):
        return qs
    return qs.filter(
        Q(account__department_id__in=permissions.department_ids(user)) | Q(owners__isnull=False)
    ).distinct()


def requester_vpcs_for(user: User) -> QuerySet[Vpc]:
    return vpcs_visible_to(user).filter(account__department_id__in=permissions.department_ids(user))


def peer_vpcs_for(user: User) -> QuerySet[Vpc]:
    return vpcs_visible_to(user).filter(owners__isnull=False).distinct()


def hubs_owned_by(user: User) -> QuerySet[Vpc]:
    """The Services VPCs this user owns, ready for `services.capacities`."""
    return _hubs().filter(pk__in=permissions.owned_vpc_ids(user))


def hubs_visible_to(user: User) -> QuerySet[Vpc]:
    """Every Services VPC (each has owners, so everyone may see it), ready for `services.capacities`."""
    return _hubs()


def _hubs() -> QuerySet[Vpc]:
    return (
        Vpc.objects.filter(is_services_vpc=True, present_in_aws=True)
        .select_related("account__department")
        .prefetch_related(Prefetch("route_tables", queryset=RouteTable.objects.select_related("vpc")))
        .order_by("name", "vpc_id")
    )


def vpc_of_departments_exists(vpc_id: str, department_ids: set[int]) -> bool:
    """Whether the inventory knows `vpc_id` as a VPC of these departments, even one gone from AWS."""
    return Vpc.objects.filter(vpc_id=vpc_id, account__department_id__in=department_ids).exists()


def vpc_with_facts(vpc_id: str) -> Vpc | None:
    return (
        Vpc.objects.select_related("account__department")
        .prefetch_related(*_vpc_prefetch(""), "owners")
        .filter(vpc_id=vpc_id, present_in_aws=True)
        .first()
    )


def observed_peerings_visible_to(user: User, *, include_managed: bool = False) -> QuerySet[ObservedPeering]:
    """Connections seen in AWS that the portal does not manage, on VPCs of the caller's
    departments or VPCs they own (admins: all); gone ones are left out.

    Managed means a request holds the connection, or one still being provisioned tagged it
    (its id may not be recorded yet). A connection whose request ended but that still exists
    in AWS is not managed any more, and can be adopted.
    """
    qs = ObservedPeering.objects.exclude(status__in=["deleted", "missing"]).order_by("connection_id")
    if not include_managed:
        held = PeeringRequest.objects.filter(HOLDS_PAIR).exclude(aws_peering_connection_id="")
        in_flight = [
            str(pk)
            for pk in PeeringRequest.objects.filter(status__in=[Status.APPROVED, Status.PROVISIONING]).values_list(
                "pk", flat=True
            )
        ]
        qs = qs.exclude(connection_id__in=held.values("aws_peering_connection_id")).exclude(
            portal_request_id__in=in_flight
        )
    if permissions.is_admin(user):
        return qs
    mine = Vpc.objects.filter(
        Q(account__department_id__in=permissions.department_ids(user)) | Q(pk__in=permissions.owned_vpc_ids(user))
    ).values("vpc_id")
    return qs.filter(Q(requester_vpc_id__in=mine) | Q(accepter_vpc_id__in=mine))


def routes_to_connections(connection_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Synced routes that target each connection, found in the tables of the VPCs it joins."""
    if not connection_ids:
        return {}
    peerings = ObservedPeering.objects.filter(connection_id__in=connection_ids)
    vpc_ids = {v for p in peerings for v in (p.requester_vpc_id, p.accepter_vpc_id)}
    found: dict[str, list[dict[str, str]]] = {pcx: [] for pcx in connection_ids}
    for table in RouteTable.objects.filter(vpc__vpc_id__in=vpc_ids).order_by("route_table_id"):
        for route in table.routes:
            if route["target"] in found:
                found[route["target"]].append(
                    {"route_table_id": table.route_table_id, "destination": route["destination"]}
                )
    return found
