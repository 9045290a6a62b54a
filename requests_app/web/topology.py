"""The topology page: which VPCs and peerings a user may see, and where they are drawn.

`topology_for` reads the database (a fixed number of queries, however many VPCs there are) and
turns rows into plain `NodeSpec`/`EdgeSpec` values; `layout` is pure geometry over those values,
so it can be tested without a database. The template only iterates over the `Picture`.

The picture is one SVG with a panel per region. Services VPCs (hubs) stand in a column at the
centre of their region's panel; the other VPCs (spokes) stand on a ring around them, clustered by
account, each cluster opened by the account's name. Labels are radial, so they never run into a
neighbour's; past `ONE_RING_MAX` slots the ring becomes two concentric rings, offset by half a
step, so an inner label passes between two outer nodes. Panels are packed left to right and wrap
into rows; edges use absolute coordinates, so peerings between regions are drawn too."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Max

from requests_app.domain.status import Status
from requests_app.domain.topology import (
    DRAWN_STATUSES,
    EDGE_KINDS,
    GONE_AWS_STATES,
    EdgeSpec,
    NodeSpec,
    edge_kind,
    layout,
)
from requests_app.inventory import selectors as inventory_selectors
from requests_app.models import AuditEvent, ObservedPeering, PeeringRequest, Vpc
from requests_app.peering import permissions
from requests_app.peering import selectors as peering_selectors


# --- the page ------------------------------------------------------------------------------------
def _node_spec(vpc: Vpc) -> NodeSpec:
    account = vpc.account
    return NodeSpec(
        key=vpc.vpc_id,
        name=vpc.name,
        region=vpc.region,
        account_id=account.account_id,
        account_name=account.name,
        is_hub=vpc.is_services_vpc,
        cidrs=tuple(vpc.cidr_list()),
        department=account.department.name,
        is_default=vpc.is_default,
        present=vpc.present_in_aws,
    )


def _one_request_per_pair(requests: Iterable[PeeringRequest]) -> list[PeeringRequest]:
    """A pair's live request, else its newest failed one (older failures stay on their own pages)."""
    chosen: dict[str, PeeringRequest] = {}
    for request in requests:  # newest first
        current = chosen.get(request.pair_key)
        if current is None or (current.status == Status.FAILED and request.status != Status.FAILED):
            chosen[request.pair_key] = request
    return list(chosen.values())


def topology_version(user: User) -> str:
    """Changes whenever the picture could: any request or AWS state change (each writes an audit
    event), a sync, a VPC or a peering seen in AWS, or the user's departments and VPCs."""
    parts = (
        AuditEvent.objects.aggregate(last=Max("id"))["last"],
        PeeringRequest.objects.aggregate(n=Count("id"), updated=Max("updated_at")),
        Vpc.objects.aggregate(n=Count("id"), synced=Max("synced_at")),
        ObservedPeering.objects.aggregate(n=Count("id"), seen=Max("seen_at")),
        sorted(permissions.department_ids(user)),
        sorted(permissions.owned_vpc_ids(user)),
        permissions.is_admin(user),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def topology_for(user: User) -> dict[str, Any]:
    """The topology template's context: the picture, the legend and the counts for its description."""
    vpcs = {
        v.vpc_id: v
        for v in inventory_selectors.vpcs_visible_to(user).prefetch_related(None).prefetch_related("cidr_blocks")
    }
    requests = _one_request_per_pair(
        peering_selectors.requests_visible_to(user)
        .filter(status__in=sorted(DRAWN_STATUSES))
        .prefetch_related(None)
        .defer(
            "checks",
            "plan",
            "justification",
            "decision_comment",
            "failure_reason",
            "requester_route_tables",
            "accepter_route_tables",
            "requester_destination_cidrs",
            "accepter_destination_cidrs",
        )
        .order_by("-created_at", "pk")
    )
    # A request the user can see shows both of its VPCs (its page names them already).
    known = {v.pk for v in vpcs.values()}
    extra = {r.requester_vpc_id for r in requests} | {r.accepter_vpc_id for r in requests}
    if extra - known:
        for vpc in (
            Vpc.objects.filter(pk__in=extra - known)
            .select_related("account__department")
            .prefetch_related("cidr_blocks")
        ):
            vpcs[vpc.vpc_id] = vpc
    nodes = [_node_spec(v) for v in vpcs.values()]
    names = {n.key: n.display_name for n in nodes}

    edges = []
    for r in requests:
        kind = edge_kind(r.status, r.drift)
        assert kind is not None
        source, target = r.requester_vpc.vpc_id, r.accepter_vpc.vpc_id
        spec = EdgeSpec(source, target, kind, r.status, request_id=str(r.pk), connection_id=r.aws_peering_connection_id)
        edges.append(replace(spec, title=f"{names[source]} → {names[target]}: {spec.status_label}"))
    is_admin = permissions.is_admin(user)
    if is_admin:
        observed = (
            ObservedPeering.objects.filter(portal_request_id="")
            .exclude(status__in=GONE_AWS_STATES)
            .only("connection_id", "requester_vpc_id", "accepter_vpc_id", "status")
        )
        edges += [
            EdgeSpec(
                o.requester_vpc_id,
                o.accepter_vpc_id,
                "unmanaged",
                o.status,
                f"{names[o.requester_vpc_id]} → {names[o.accepter_vpc_id]}: {o.connection_id}, "
                f"{o.status} in AWS, not made by the portal",
                connection_id=o.connection_id,
            )
            for o in observed
            if o.requester_vpc_id in vpcs and o.accepter_vpc_id in vpcs
        ]
    picture = layout(nodes, edges)
    kinds = {e.spec.kind for e in picture.edges}
    return {
        "picture": picture,
        # The table, in reading order (the picture draws the states that need attention last).
        "rows": sorted(
            picture.edges,
            key=lambda e: (
                e.source.spec.display_name,
                e.source.spec.key,
                e.target.spec.display_name,
                e.target.spec.key,
                e.spec.request_id,
                e.spec.connection_id,
            ),
        ),
        "legend": [
            {"kind": kind, "label": label, "drawn": kind in kinds}
            for kind, label in EDGE_KINDS
            if kind != "unmanaged" or is_admin
        ],
        "show_unmanaged": is_admin,
        "region_count": len(picture.panels),
        "vpc_count": len(picture.nodes),
        "hub_count": sum(1 for n in picture.nodes if n.spec.is_hub),
        "edge_count": len(picture.edges),
    }
