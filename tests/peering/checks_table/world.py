"""The checks table's world: the demo world (built once per module, see conftest.py) and the small
changes a row makes to it (`Setup`s), and the table's row type (`Case`)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from requests_app.domain import cidrs
from requests_app.inventory import sync
from requests_app.models import AwsAccount, ManagedRoute, ObservedPeering, PeeringRequest, RouteTable, Vpc, VpcCidr
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from tests.fixtures.sandbox import ec2_as

UNKNOWN_VPC = "vpc-0123456789abcdef0"  # in no account the portal knows
OUTSIDE_VPC = "vpc-0fedcba9876543210"  # a VPC in AWS outside the portal, seen only as a peer
_connection_numbers = itertools.count(1)


@dataclass
class World:
    ids: dict[str, str]
    settings: Any
    cleanups: list[Callable[[], Any]] = field(default_factory=list)

    def resolve(self, value: Any) -> Any:
        """`@name` in a string becomes the AWS id (or the stored id) called `name`."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, str):
            return re.sub(r"@([\w-]+)", lambda m: self.ids[m.group(1)], value)
        return value

    def vpc_id(self, name: str) -> str:
        return self.ids.get(name, name)

    def vpc(self, name: str) -> Vpc:
        return Vpc.objects.select_related("account__department").get(vpc_id=self.vpc_id(name))

    def table(self, name: str) -> RouteTable:
        return RouteTable.objects.get(route_table_id=self.ids[name])

    @staticmethod
    def user(username: str) -> Any:
        return get_user_model().objects.get(username=username)


# --- setups: small changes to the world ---------------------------------------------------------
Setup = Callable[[World], None]


def combine(*steps: Setup) -> Setup:
    def apply(w: World) -> None:
        for step in steps:
            step(w)

    return apply


def limits(account_id: str, **quotas: int) -> Setup:
    """An admin's per-account quota override (`max_peerings_per_vpc`, …)."""

    def apply(w: World) -> None:
        assert AwsAccount.objects.filter(account_id=account_id).update(**quotas) == 1

    return apply


def add_route(table: str, destination: str, target: str) -> Setup:
    """A route the last sync found in a table (appended to `RouteTable.routes`)."""

    def apply(w: World) -> None:
        rt = w.table(table)
        rt.routes = [*rt.routes, {"destination": destination, "target": target, "state": "active"}]
        rt.save(update_fields=["routes"])

    return apply


def add_cidr(vpc: str, cidr: str) -> Setup:
    def apply(w: World) -> None:
        first, last = cidrs.address_range(cidr)
        VpcCidr.objects.create(vpc=w.vpc(vpc), cidr=cidr, is_primary=False, first_address=first, last_address=last)

    return apply


def vpc_fields(*vpcs: str, **fields: Any) -> Setup:
    def apply(w: World) -> None:
        assert Vpc.objects.filter(vpc_id__in=[w.vpc_id(v) for v in vpcs]).update(**fields) == len(vpcs)

    return apply


def synced(*vpcs: str, ago: timedelta | None) -> Setup:
    """The VPCs were last read from AWS `ago` before now (None: never)."""

    def apply(w: World) -> None:
        vpc_fields(*vpcs, synced_at=None if ago is None else timezone.now() - ago)(w)

    return apply


def setting(name: str, value: Any) -> Setup:
    def apply(w: World) -> None:
        setattr(w.settings, name, value)

    return apply


def no_route_tables(vpc: str) -> Setup:
    # AWS gives every VPC a main route table that cannot be deleted, so the sandbox cannot show a
    # VPC without one; an inventory can (a sync whose role could not describe route tables), and
    # that is the state this builds.
    def apply(w: World) -> None:
        assert RouteTable.objects.filter(vpc=w.vpc(vpc)).delete()[0] >= 1

    return apply


def hold(
    requester: str, accepter: str, status: str, *, by: str = "fiona", key: str = "", routes: str = "", pcx: str = ""
) -> Setup:
    """A portal request in `status` between two VPCs, as earlier use of the portal left it.

    With `routes` ("planned", "created" or "removed"), its routes (every table of both VPCs to
    the other's blocks) are recorded as the portal records its own work, and no sync has read
    them since: they are in the portal's picture of the network, not in the tables' synced routes.
    """

    def apply(w: World) -> None:
        req, acc = w.vpc(requester), w.vpc(accepter)
        obj = PeeringRequest.objects.create(
            requester_vpc=req,
            accepter_vpc=acc,
            pair_key=PeeringRequest.make_pair_key(req.vpc_id, acc.vpc_id),
            status=status,
            justification="filed earlier",
            requested_by=w.user(by),
            department=req.account.department,
            aws_peering_connection_id=pcx,
        )
        if routes:
            ManagedRoute.objects.bulk_create(
                ManagedRoute(
                    request=obj,
                    side=side,
                    route_table_id=table.route_table_id,
                    destination=cidr,
                    state=routes,
                    changed_at=timezone.now(),
                )
                for side, vpc, peer in (("requester", req, acc), ("accepter", acc, req))
                for table in vpc.route_tables.all()
                for cidr in peer.cidr_list()
            )
        if key:
            w.ids[key] = str(obj.pk)

    return apply


def observed(
    requester: str, accepter: str, status: str, *, requester_account: str, portal_request_id: str = "", key: str = ""
) -> Setup:
    """A peering connection the last sync saw in AWS (`portal_request_id` blank: not the portal's)."""

    def apply(w: World) -> None:
        accepter_vpc = Vpc.objects.filter(vpc_id=w.vpc_id(accepter)).select_related("account").first()
        seen = ObservedPeering.objects.create(
            connection_id=f"pcx-{next(_connection_numbers):017x}",
            requester_vpc_id=w.vpc_id(requester),
            accepter_vpc_id=w.vpc_id(accepter),
            requester_account_id=requester_account,
            accepter_account_id=accepter_vpc.account.account_id if accepter_vpc else "999999999999",
            status=status,
            portal_request_id=w.resolve(portal_request_id),
            seen_at=timezone.now(),
        )
        if key:
            w.ids[key] = seen.connection_id

    return apply


def filed(username: str, requester: str, accepter: str, *, key: str) -> Setup:
    """A request filed through the service, as the form or the API would."""

    def apply(w: World) -> None:
        created = peering_services.peering_request_submit(
            actor=w.user(username),
            draft=preflight.PeeringDraft(
                requester_vpc=w.vpc_id(requester), accepter_vpc=w.vpc_id(accepter), justification="filed earlier"
            ),
        )
        w.ids[key] = str(created.pk)

    return apply


def rejected(username: str, *, key: str) -> Setup:
    def apply(w: World) -> None:
        peering_services.peering_request_reject(actor=w.user(username), request_id=w.ids[key], comment="not now")

    return apply


def aws_connection_not_made_by_portal(w: World) -> None:
    """Someone peered finance-app with services-use1 in the AWS console; the portal synced it."""
    ec2 = ec2_as("222222222222", "us-east-1")
    pcx = ec2.create_vpc_peering_connection(
        VpcId=w.ids["finance-app"], PeerVpcId=w.ids["services-use1"], PeerOwnerId="111111111111", PeerRegion="us-east-1"
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    w.cleanups.append(lambda: ec2.delete_vpc_peering_connection(VpcPeeringConnectionId=pcx))
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))
    seen = ObservedPeering.objects.get(connection_id=pcx)
    assert not seen.is_managed
    w.ids["pcx"] = pcx
    w.ids["pcx_status"] = seen.status


# finance-app (account 222222222222) holds three peerings that count against its quota, in
# either direction and made by the portal or not; and some that must not count.
FINANCE_HOLDS_THREE_PEERINGS = combine(
    hold("finance-app", "eng-build", "active"),
    hold("hr-portal", "finance-app", "decommissioning", by="harry"),
    observed("finance-app", OUTSIDE_VPC, "active", requester_account="222222222222"),
    # not counted: not (or no longer) holding a connection, or counted through its portal request
    hold("finance-app", "eng-sandbox", "pending_approval"),
    hold("finance-app", "services-euw1", "rejected"),
    observed("finance-app", "vpc-0aaaaaaaaaaaaaaa1", "deleted", requester_account="222222222222"),
    observed(
        "finance-app",
        "vpc-0aaaaaaaaaaaaaaa2",
        "active",
        requester_account="222222222222",
        portal_request_id="00000000-0000-0000-0000-000000000001",
    ),
)
# Account 222222222222 has three peering requests outstanding in AWS; others must not count.
FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING = combine(
    hold("finance-app", "eng-build", "approved"),
    hold("default-222222222222-us-east-1", "eng-sandbox", "provisioning"),
    observed("finance-app", OUTSIDE_VPC, "pending-acceptance", requester_account="222222222222"),
    # not counted: not yet in AWS, already accepted, asked by another account, or the portal's own
    hold("finance-app", "hr-portal", "pending_approval"),
    hold("finance-app", "services-euw1", "active"),
    observed("eng-build", "finance-app", "pending-acceptance", requester_account="444444444444"),
    observed(
        "finance-app",
        "vpc-0aaaaaaaaaaaaaaa2",
        "pending-acceptance",
        requester_account="222222222222",
        portal_request_id="00000000-0000-0000-0000-000000000001",
    ),
)


# --- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    user: str
    requester: str  # a VPC name of the demo world, or a raw VPC id
    accepter: str
    code: str
    status: str | None  # None: the code must not appear, and the request can be filed
    setup: Setup | None = None
    body: dict[str, Any] = field(default_factory=dict)  # more request fields; `@name` is resolved
    detail: str = ""  # in the detail of a check with this code and status; `@name` is resolved
    form_refuses: str = ""  # the form does not offer this field's value, so it cannot run the check


FINANCE, SERVICES = "finance-app", "services-use1"
# Every account's default VPC has 172.31.0.0/16: two departments' default VPCs are overlapping
# spokes as soon as both peer with the same hub.
FINANCE_DEFAULT, ENGINEERING_DEFAULT = "default-222222222222-us-east-1", "default-444444444444-us-east-1"
OLD_PCX = "pcx-0123abcd0123abcd0"
