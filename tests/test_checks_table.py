"""Every pre-flight check, one table row per (check code, status), through every path that runs it.

Each row changes the demo world a little (a quota override, a route added to a table's JSON, DNS
turned off, an old `synced_at`, a request or an AWS connection that already holds the pair), then
asks for one peering and expects one check to come back with one status. The same row is sent
through:

1. the service, `preflight.peering_request_evaluate`;
2. the API, preflight (200 with `checks`) and create (201, or 400 whose `checks` are the
   preflight's and whose `errors` name the failing checks; a refused create files nothing);
3. the HTML form, `/requests/new/` with `check=1`, and the live-check fragment
   `/requests/new/check/`, which must render exactly the same checks, escaped.

Rows whose status is `None` are the "pass" case of a check that never reports `pass`: a request
that can be filed and in which the code does not appear at all.

Building the demo world (sandbox VPCs, inventory sync) costs seconds, so it is built once for this
module, inside a transaction that is rolled back when the module ends; every test then runs in a
savepoint of its own (pytest-django's usual per-test transaction), so a row's changes never reach
the next row. `test_rows_start_from_the_untouched_demo_world` checks that isolation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests as http
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.html import escape
from rest_framework.test import APIClient

from requests_app.domain import checks as rules
from requests_app.domain import cidrs
from requests_app.integrations import tokens
from requests_app.inventory import sync
from requests_app.inventory.network import LIVE_AWS_STATES
from requests_app.management import demo
from requests_app.models import AwsAccount, ManagedRoute, ObservedPeering, PeeringRequest, RouteTable, Vpc, VpcCidr
from requests_app.peering import permissions, preflight
from requests_app.peering import services as peering_services
from tests.conftest import DEMO_PASSWORD, ec2_as

pytestmark = pytest.mark.django_db

URL = "/api/v1/peering-requests/"
PREFLIGHT_URL = f"{URL}preflight/"
FORM_URL = "/requests/new/"
LIVE_CHECK_URL = "/requests/new/check/"
JUSTIFICATION = "the app needs the shared directory and logging"
UNKNOWN_VPC = "vpc-0123456789abcdef0"  # in no account the portal knows
OUTSIDE_VPC = "vpc-0fedcba9876543210"  # a VPC in AWS outside the portal, seen only as a peer
SEVERITY = {"pass": 0, "warn": 1, "fail": 2}
_connection_numbers = itertools.count(1)


# --- the world, built once per module -----------------------------------------------------------
@pytest.fixture(scope="module")
def demo_ids(moto_server: str, django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, str]]:
    """The demo world (as conftest's `demo_world` builds it), inside a module-long transaction.

    Yields AWS ids by name: VPC names (default VPCs as `default-<account>-<region>`) and route
    table names (`services-use1-main`, `services-private`, …).
    """
    from requests_app.aws import gateway

    http.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    gateway._default = None  # cached clients hold credentials of the previous sandbox
    demo.build_sandbox()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
                demo.register_portal(DEMO_PASSWORD)
            ids: dict[str, str] = {}
            for vpc in Vpc.objects.select_related("account").prefetch_related("route_tables"):
                ids[vpc.name or f"default-{vpc.account.account_id}-{vpc.region}"] = vpc.vpc_id
                ids.update({rt.name: rt.route_table_id for rt in vpc.route_tables.all() if rt.name})
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield ids
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


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


@pytest.fixture
def world(demo_ids: dict[str, str], db: Any, settings: Any) -> Iterator[World]:
    w = World(ids=dict(demo_ids), settings=settings)
    yield w
    for cleanup in reversed(w.cleanups):
        cleanup()


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
CASES = [
    # vpc_not_found
    Case(
        "vpc_not_found-fail-unknown-accepter",
        "fiona",
        FINANCE,
        UNKNOWN_VPC,
        "vpc_not_found",
        "fail",
        detail=f"VPC {UNKNOWN_VPC} is not in the portal's inventory",
        form_refuses="accepter_vpc",
    ),
    Case(
        "vpc_not_found-fail-requester-vanished-from-aws",
        "fiona",
        FINANCE,
        SERVICES,
        "vpc_not_found",
        "fail",
        setup=vpc_fields(FINANCE, present_in_aws=False),
        detail="VPC @finance-app is not in the portal's inventory",
        form_refuses="requester_vpc",
    ),
    Case("vpc_not_found-absent", "fiona", FINANCE, SERVICES, "vpc_not_found", None),
    # same_vpc
    Case(
        "same_vpc-fail",
        "nina",
        SERVICES,
        SERVICES,
        "same_vpc",
        "fail",
        detail="services-use1 (@services-use1) cannot peer with itself",
    ),
    Case("same_vpc-absent-two-vpcs-of-one-owner", "nina", "services-euw1", SERVICES, "same_vpc", None),
    # vpc_ownership / not_your_vpc
    Case(
        "vpc_ownership-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "vpc_ownership",
        "pass",
        detail="finance-app (@finance-app) belongs to your department",
    ),
    Case(
        "not_your_vpc-fail-other-department",
        "fiona",
        "hr-portal",
        "services-euw1",
        "not_your_vpc",
        "fail",
        # Another department's VPC is named by the id the caller sent, and nothing more.
        detail="@hr-portal is not one of your department's VPCs",
        form_refuses="requester_vpc",
    ),
    Case(
        "not_your_vpc-fail-owning-is-not-belonging",
        "sam",
        SERVICES,
        "services-euw1",
        "not_your_vpc",
        "fail",
        detail="@services-use1 is not one of your department's VPCs",
        form_refuses="requester_vpc",
    ),
    # accepter_owner / no_approver
    Case(
        "accepter_owner-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "accepter_owner",
        "pass",
        detail="services-use1 (@services-use1) has owners who can approve",
    ),
    # A peer of the caller's own department with no owners (another department's would be not found).
    Case(
        "no_approver-fail",
        "erin",
        "eng-build",
        "eng-sandbox",
        "no_approver",
        "fail",
        detail="eng-sandbox (@eng-sandbox) has no owners in the portal, so nobody could approve a peering with it",
        form_refuses="accepter_vpc",
    ),
    # cidr_overlap
    Case(
        "cidr_overlap-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "cidr_overlap",
        "pass",
        detail="no overlap between 10.1.0.0/16, 10.11.0.0/16 and 10.0.0.0/16",
    ),
    Case(
        "cidr_overlap-fail",
        "erin",
        "eng-sandbox",
        SERVICES,
        "cidr_overlap",
        "fail",
        detail="CIDR blocks overlap: 10.0.128.0/20 of eng-sandbox (@eng-sandbox) overlaps "
        "10.0.0.0/16 of services-use1 (@services-use1)",
    ),
    # duplicate_peering
    Case(
        "duplicate_peering-pass-earlier-request-rejected",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "pass",
        setup=combine(filed("fiona", FINANCE, SERVICES, key="earlier"), rejected("nina", key="earlier")),
        detail="no other peering between finance-app (@finance-app) and services-use1 (@services-use1)",
    ),
    Case(
        "duplicate_peering-fail-pending-same-direction",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "fail",
        setup=filed("fiona", FINANCE, SERVICES, key="earlier"),
        detail="finance-app (@finance-app) and services-use1 (@services-use1) already have a peering "
        "(request @earlier, pending_approval, the same direction); two VPCs can have only one",
    ),
    Case(
        "duplicate_peering-fail-active-opposite-direction",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "fail",
        setup=hold(SERVICES, FINANCE, "active", by="nina", key="held"),
        # fiona cannot open nina's request, so its id is not shown to her.
        detail="(a request of another department, active, the opposite direction)",
    ),
    Case(
        "duplicate_peering-fail-aws-connection-not-made-by-portal",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "fail",
        setup=aws_connection_not_made_by_portal,
        detail="(connection @pcx found in AWS, not made by the portal, @pcx_status, the same direction)",
    ),
    Case(
        "duplicate_peering-fail-portal-connection-outlived-its-request",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "fail",
        setup=combine(
            hold(FINANCE, SERVICES, "decommissioned", key="old"),
            observed(
                FINANCE, SERVICES, "active", requester_account="222222222222", portal_request_id="@old", key="leftover"
            ),
        ),
        detail="(connection @leftover found in AWS, active, the same direction)",
    ),
    Case(
        "duplicate_peering-pass-aws-connection-deleted",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_peering",
        "pass",
        setup=observed(SERVICES, FINANCE, "deleted", requester_account="111111111111"),
        detail="no other peering between finance-app (@finance-app) and services-use1 (@services-use1)",
    ),
    # route_table_not_found
    Case(
        "route_table_not_found-fail-table-of-another-vpc",
        "fiona",
        FINANCE,
        SERVICES,
        "route_table_not_found",
        "fail",
        body={"accepter_route_tables": ["@services-euw1-main"]},
        detail="route table @services-euw1-main is not a route table of services-use1 (@services-use1)",
    ),
    Case(
        "route_table_not_found-absent-tables-chosen",
        "fiona",
        FINANCE,
        SERVICES,
        "route_table_not_found",
        None,
        body={"requester_route_tables": ["@finance-app-main"], "accepter_route_tables": ["@services-private"]},
    ),
    # no_route_tables
    Case(
        "no_route_tables-fail",
        "fiona",
        FINANCE,
        SERVICES,
        "no_route_tables",
        "fail",
        setup=no_route_tables(SERVICES),
        detail="services-use1 (@services-use1) has no route tables to add routes to",
    ),
    Case("no_route_tables-absent", "fiona", FINANCE, SERVICES, "no_route_tables", None),
    # invalid_cidr
    Case(
        "invalid_cidr-fail-host-bits",
        "fiona",
        FINANCE,
        SERVICES,
        "invalid_cidr",
        "fail",
        body={"requester_destination_cidrs": ["10.0.1.5/24"]},
        detail="'10.0.1.5/24' is not an IPv4 CIDR block with its host bits zero (for example 10.0.1.0/24)",
    ),
    Case(
        "invalid_cidr-absent-narrow-destination",
        "fiona",
        FINANCE,
        SERVICES,
        "invalid_cidr",
        None,
        body={"requester_destination_cidrs": ["10.0.1.0/24"]},
    ),
    # Another spelling of a block is taken as the block (stored and sent only canonically) ...
    Case(
        "invalid_cidr-absent-another-spelling",
        "fiona",
        FINANCE,
        SERVICES,
        "invalid_cidr",
        None,
        body={"requester_destination_cidrs": ["10.0.0.0/016"]},
    ),
    # ... so two spellings of one block are the same destination twice.
    Case(
        "duplicate_destination-fail-two-spellings",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_destination",
        "fail",
        body={"requester_destination_cidrs": ["10.0.1.0/24", " 10.0.1.0/024"]},
        detail="10.0.1.0/24 is listed more than once",
    ),
    # duplicate_destination / duplicate_route_table: one route per table and destination
    Case(
        "duplicate_destination-fail",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_destination",
        "fail",
        body={"requester_destination_cidrs": ["10.0.1.0/24", "10.0.1.0/24"]},
        detail="10.0.1.0/24 is listed more than once",
    ),
    Case(
        "duplicate_destination-absent",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_destination",
        None,
        body={"requester_destination_cidrs": ["10.0.1.0/24", "10.0.2.0/24"]},
    ),
    Case(
        "duplicate_route_table-fail",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_route_table",
        "fail",
        body={"accepter_route_tables": ["@services-private", "@services-private"]},
        detail="route table @services-private is listed more than once for services-use1 (@services-use1)",
    ),
    Case(
        "duplicate_route_table-absent",
        "fiona",
        FINANCE,
        SERVICES,
        "duplicate_route_table",
        None,
        body={"accepter_route_tables": ["@services-private", "@services-use1-main"]},
    ),
    # non_private_cidr
    Case(
        "non_private_cidr-fail",
        "fiona",
        FINANCE,
        SERVICES,
        "non_private_cidr",
        "fail",
        body={"requester_destination_cidrs": ["8.8.8.0/24"]},
        detail="8.8.8.0/24 is not a private address range; peering carries traffic between private addresses only",
    ),
    Case(
        "non_private_cidr-absent",
        "fiona",
        FINANCE,
        SERVICES,
        "non_private_cidr",
        None,
        body={"accepter_destination_cidrs": ["10.1.0.0/16"]},
    ),
    # shared_address_space
    Case(
        "shared_address_space-warn",
        "fiona",
        FINANCE,
        SERVICES,
        "shared_address_space",
        "warn",
        setup=add_cidr(SERVICES, "100.64.0.0/16"),
        body={"requester_destination_cidrs": ["100.64.0.0/16"]},
        detail="100.64.0.0/16 is in the shared address space 100.64.0.0/10, not RFC 1918",
    ),
    Case("shared_address_space-absent", "fiona", FINANCE, SERVICES, "shared_address_space", None),
    # destination_outside_peer
    Case(
        "destination_outside_peer-fail-transit-to-third-vpc",
        "fiona",
        FINANCE,
        SERVICES,
        "destination_outside_peer",
        "fail",
        body={"requester_destination_cidrs": ["10.100.1.0/24"]},
        # Named because fiona may see services-euw1 (it has owners); a hidden VPC is not named.
        detail="10.100.1.0/24 is not inside services-use1 (@services-use1)'s CIDRs (10.0.0.0/16): it belongs to "
        "services-euw1 (@services-euw1); peering is not transitive",
    ),
    Case(
        "destination_outside_peer-fail-edge-to-edge",
        "fiona",
        FINANCE,
        SERVICES,
        "destination_outside_peer",
        "fail",
        body={"requester_destination_cidrs": ["192.168.0.0/24"]},
        detail="192.168.0.0/24 is not inside services-use1 (@services-use1)'s CIDRs (10.0.0.0/16): peering is not "
        "transitive and carries no edge-to-edge traffic",
    ),
    Case(
        "destination_outside_peer-absent-secondary-block",
        "fiona",
        FINANCE,
        SERVICES,
        "destination_outside_peer",
        None,
        body={"accepter_destination_cidrs": ["10.11.0.0/16"]},
    ),
    # route_conflict
    Case(
        "route_conflict-fail-narrower-route-requester-side",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("finance-app-main", "10.0.1.0/24", "pcx-0aaaabbbbccccdddd"),
        detail="route table finance-app-main of finance-app (@finance-app) already routes 10.0.1.0/24 to "
        "pcx-0aaaabbbbccccdddd, which lies within 10.0.0.0/16",
    ),
    Case(
        "route_conflict-fail-equal-route-accepter-side",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("services-private", "10.11.0.0/16", "tgw-0123456789abcdef0"),
        detail="route table services-private of services-use1 (@services-use1) already routes 10.11.0.0/16 to "
        "tgw-0123456789abcdef0, which lies within 10.11.0.0/16",
    ),
    # A broader route to a gateway stays: the peering's narrower route wins by longest prefix.
    Case(
        "route_conflict-pass-broader-routes-to-gateways",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "pass",
        setup=combine(
            add_route("finance-app-main", "0.0.0.0/0", "igw-0123456789abcdef0"),
            add_route("finance-app-main", "10.0.0.0/8", "tgw-0123456789abcdef0"),
        ),
        detail="broader routes to gateways in finance-app (@finance-app) stay (finance-app-main: 0.0.0.0/0 → "
        "igw-0123456789abcdef0; finance-app-main: 10.0.0.0/8 → tgw-0123456789abcdef0): the peering's "
        "narrower routes win by longest prefix",
    ),
    # A broader route to a peering owns its addresses: a narrower one inside it would steal them.
    Case(
        "route_conflict-fail-broader-route-to-a-peering",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("services-private", "10.0.0.0/8", "pcx-0aaaabbbbccccdddd"),
        detail="route table services-private of services-use1 (@services-use1) already routes 10.0.0.0/8 to "
        "pcx-0aaaabbbbccccdddd, which contains 10.1.0.0/16: that peer owns those addresses, and a narrower "
        "route would take part of its traffic",
    ),
    # The portal's own routes count before any sync has read them ...
    Case(
        "route_conflict-fail-a-route-the-portal-made-since-the-last-sync",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "route_conflict",
        "fail",
        setup=hold(ENGINEERING_DEFAULT, SERVICES, "active", by="erin", routes="created", pcx=OLD_PCX),
        detail=f"route table services-use1-main of services-use1 (@services-use1) already routes 172.31.0.0/16 to "
        f"{OLD_PCX} (a request of another department: a VPC of another department → services-use1 "
        "(@services-use1), active), which lies within 172.31.0.0/16",
    ),
    # ... and a route it removed since does not.
    Case(
        "route_conflict-absent-a-route-the-portal-removed-since-the-last-sync",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        None,
        setup=combine(
            add_route("services-use1-main", "10.1.0.0/16", OLD_PCX),
            hold(FINANCE, SERVICES, "decommissioned", routes="removed", pcx=OLD_PCX),
        ),
    ),
    # A request waiting for approval claims its routes: a warning, until one of the two is approved.
    Case(
        "route_conflict-warn-claim-of-a-pending-request",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "route_conflict",
        "warn",
        setup=filed("erin", ENGINEERING_DEFAULT, SERVICES, key="other"),
        detail="route table services-use1-main of services-use1 (@services-use1) already routes 172.31.0.0/16 to "
        "the peering of a request of another department: a VPC of another department → services-use1 "
        "(@services-use1), pending_approval, which lies within 172.31.0.0/16; with no reverse-path "
        "forwarding it cannot route to both; the one approved first wins",
    ),
    # spoke_overlap: two peers of one VPC (two spokes of a hub) must not overlap
    Case(
        "spoke_overlap-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "pass",
        setup=hold("eng-build", SERVICES, "active", by="erin"),
        detail="no other peer of services-use1 (@services-use1) or finance-app (@finance-app) overlaps the new peer",
    ),
    Case(
        "spoke_overlap-warn-the-other-spoke-is-pending",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "spoke_overlap",
        "warn",
        setup=filed("erin", ENGINEERING_DEFAULT, SERVICES, key="other"),
        # erin's VPC and request are another department's: fiona learns the CIDR and the table only.
        detail="172.31.0.0/16 of @default-222222222222-us-east-1 overlaps 172.31.0.0/16 of a VPC of "
        "another department, which services-use1 (@services-use1) already peers with (a request of another "
        "department, pending_approval, routed by route table @services-use1-main, @services-private): with "
        "no reverse-path forwarding services-use1 (@services-use1) cannot route to both; the one approved "
        "first wins",
    ),
    # The rule holds on both sides: finance-app cannot take a second peer that overlaps its first.
    Case(
        "spoke_overlap-fail-the-requester-already-peers-with-an-overlapping-vpc",
        "fiona",
        FINANCE,
        "services-euw1",
        "spoke_overlap",
        "fail",
        setup=combine(hold(FINANCE, SERVICES, "active", key="held"), add_cidr("services-euw1", "10.0.64.0/18")),
        detail="10.0.64.0/18 of services-euw1 (@services-euw1) overlaps 10.0.0.0/16 of services-use1 "
        "(@services-use1), which finance-app (@finance-app) already peers with (request @held, active)",
    ),
    Case(
        "spoke_overlap-fail-a-block-inside-a-live-spoke",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(hold("eng-build", SERVICES, "approved", by="erin"), add_cidr(FINANCE, "10.3.128.0/20")),
        detail="10.3.128.0/20 of finance-app (@finance-app) overlaps 10.3.0.0/16 of a VPC of another department, "
        "which services-use1 (@services-use1) already peers with (a request of another department, approved)",
    ),
    Case(
        "spoke_overlap-fail-a-block-containing-a-live-spoke",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(hold("eng-build", SERVICES, "provisioning", by="erin"), add_cidr(FINANCE, "10.2.0.0/15")),
        detail="10.2.0.0/15 of finance-app (@finance-app) overlaps 10.3.0.0/16 of a VPC of another department",
    ),
    Case(
        "spoke_overlap-fail-a-connection-found-in-aws",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(
            observed("eng-build", SERVICES, "active", requester_account="444444444444", key="seen"),
            add_cidr(FINANCE, "10.3.128.0/20"),
        ),
        detail="(connection @seen found in AWS, not made by the portal, active)",
    ),
    Case(
        "spoke_overlap-fail-default-vpcs-of-two-departments",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=hold(ENGINEERING_DEFAULT, SERVICES, "active", by="erin"),
        detail="172.31.0.0/16 of @default-222222222222-us-east-1 overlaps 172.31.0.0/16 of a VPC of "
        "another department, which services-use1 (@services-use1) already peers with (a request of another "
        "department, active): with no reverse-path forwarding services-use1 (@services-use1) cannot route "
        "to both",
    ),
    Case(
        "route_conflict-absent-table-not-chosen",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        None,
        setup=add_route("services-private", "10.1.0.0/16", "tgw-0123456789abcdef0"),
        body={"accepter_route_tables": ["@services-use1-main"]},
    ),
    # inter_region
    Case(
        "inter_region-warn",
        "fiona",
        FINANCE,
        "services-euw1",
        "inter_region",
        "warn",
        detail="finance-app (@finance-app) is in us-east-1 and services-euw1 (@services-euw1) in eu-west-1: "
        "inter-region traffic crosses with an MTU of at most 8500 bytes (1500 through an internet gateway or "
        "a VPN), and security groups cannot reference the peer's",
    ),
    Case("inter_region-absent", "fiona", FINANCE, SERVICES, "inter_region", None),
    # dns_prerequisites
    Case(
        "dns_prerequisites-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "pass",
        body={"allow_dns_resolution": True},
        detail="DNS hostnames and support are enabled on both VPCs",
    ),
    Case(
        "dns_prerequisites-fail-accepter-hostnames-off",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "fail",
        setup=vpc_fields(SERVICES, dns_hostnames=False),
        body={"allow_dns_resolution": True},
        detail="DNS resolution across the peering needs DNS hostnames and DNS support on both VPCs: "
        "services-use1 (@services-use1) has DNS hostnames disabled",
    ),
    Case(
        "dns_prerequisites-fail-requester-support-off",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "fail",
        setup=vpc_fields(FINANCE, dns_support=False),
        body={"allow_dns_resolution": True},
        detail="finance-app (@finance-app) has DNS support disabled",
    ),
    # quota_peerings_per_vpc: finance-app holds 3, so this request makes 4
    Case(
        "quota_peerings_per_vpc-pass-4-of-6",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "pass",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=6)),
        detail="peerings of finance-app (@finance-app): 4 of 6 after this request",
    ),
    Case(
        "quota_peerings_per_vpc-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "warn",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=5)),
        detail="peerings of finance-app (@finance-app): 4 of 5 after this request, close to the quota",
    ),
    Case(
        "quota_peerings_per_vpc-warn-4-of-4-at-the-limit",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "warn",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=4)),
        detail="peerings of finance-app (@finance-app): 4 of 4 after this request, close to the quota",
    ),
    Case(
        "quota_peerings_per_vpc-fail-4-of-3",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "fail",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=3)),
        detail="peerings of finance-app (@finance-app): 4 of 3 after this request, over the quota; "
        "ask AWS to raise it, then an admin to raise it here",
    ),
    Case(
        "quota_peerings_per_vpc-fail-accepter-full",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "fail",
        setup=combine(
            hold("hr-portal", SERVICES, "active", by="harry"), limits("111111111111", max_peerings_per_vpc=1)
        ),
        detail="peerings of services-use1 (@services-use1): 2 of 1 after this request, over the quota",
    ),
    # quota_outstanding_requests: account 222222222222 has 3 outstanding, so this request makes 4
    Case(
        "quota_outstanding_requests-pass-4-of-6",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "pass",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=6)),
        detail="outstanding peering requests of account 222222222222: 4 of 6 after this request",
    ),
    Case(
        "quota_outstanding_requests-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "warn",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=5)),
        detail="outstanding peering requests of account 222222222222: 4 of 5 after this request, close to the quota",
    ),
    Case(
        "quota_outstanding_requests-fail-4-of-3",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "fail",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=3)),
        detail="outstanding peering requests of account 222222222222: 4 of 3 after this request, over the quota",
    ),
    # quota_routes_per_table: finance-app-main has 2 routes (both local) and gets 1 (10.0.0.0/16)
    Case(
        "quota_routes_per_table-pass-3-of-4",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "pass",
        setup=limits("222222222222", max_routes_per_table=4),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 4 after this request",
    ),
    Case(
        "quota_routes_per_table-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "warn",
        setup=combine(
            add_route("finance-app-main", "0.0.0.0/0", "igw-0123456789abcdef0"),
            limits("222222222222", max_routes_per_table=5),
        ),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 4 of 5 after this "
        "request, close to the quota",
    ),
    Case(
        "quota_routes_per_table-warn-3-of-3-at-the-limit",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "warn",
        setup=limits("222222222222", max_routes_per_table=3),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 3 after this "
        "request, close to the quota",
    ),
    Case(
        "quota_routes_per_table-fail-3-of-2",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "fail",
        setup=limits("222222222222", max_routes_per_table=2),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 2 after this "
        "request, over the quota",
    ),
    Case(
        "quota_routes_per_table-fail-accepter-table",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "fail",
        setup=limits("111111111111", max_routes_per_table=2),
        detail="routes in services-private (@services-private) of services-use1 (@services-use1): 3 of 2 after this "
        "request, over the quota",
    ),
    # inventory_stale (warn only: it never blocks)
    Case(
        "inventory_stale-pass-just-synced",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "pass",
        setup=synced(FINANCE, SERVICES, ago=timedelta(0)),
        detail="inventory read from AWS 0.0 h ago",
    ),
    Case(
        "inventory_stale-warn-both-synced-48h-ago",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(FINANCE, SERVICES, ago=timedelta(hours=48)),
        detail="the checks used an inventory read from AWS 48.0 h ago; sync accounts 222222222222, "
        "111111111111 for current routes and CIDRs",
    ),
    Case(
        "inventory_stale-warn-the-older-vpc-counts",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(SERVICES, ago=timedelta(hours=30)),
        detail="the checks used an inventory read from AWS 30.0 h ago",
    ),
    Case(
        "inventory_stale-warn-max-age-setting",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=combine(setting("INVENTORY_MAX_AGE_SECONDS", 300), synced(FINANCE, SERVICES, ago=timedelta(minutes=12))),
        detail="the checks used an inventory read from AWS 0.2 h ago",
    ),
    Case(
        "inventory_stale-warn-never-synced",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(FINANCE, ago=None),
        detail="these VPCs have never been read from AWS; sync their accounts first",
    ),
]


# --- helpers ------------------------------------------------------------------------------------
def _api_as(user: Any) -> APIClient:
    client = APIClient()
    _, key = tokens.issue(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _form_data(fields: dict[str, Any]) -> dict[str, Any]:
    """The request as the HTML form posts it: ticked tables, comma-separated CIDRs, a checkbox."""
    data: dict[str, Any] = {k: fields[k] for k in ("requester_vpc", "accepter_vpc", "justification")}
    for name in ("requester_route_tables", "accepter_route_tables"):
        if fields.get(name):
            data[name] = fields[name]
    for name in ("requester_destination_cidrs", "accepter_destination_cidrs"):
        if fields.get(name):
            data[name] = ", ".join(fields[name])
    if fields.get("allow_dns_resolution"):
        data["allow_dns_resolution"] = "on"
    return data


def _rendered(check: dict[str, Any]) -> str:
    """One check as `_checks.html` renders it, detail escaped."""
    status = check["status"]
    return (
        f'<li class="check-{status}"><strong>{status.upper()}</strong> '
        f"<code>{check['code']}</code> {escape(check['detail'])}</li>"
    )


def _rendered_checks(html: str) -> list[str]:
    return re.findall(r'<li class="check-\w+">.*?</li>', html, re.S)


def _fails(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if c["status"] == "fail"]


def _assert_row(case: Case, checks: list[dict[str, Any]], w: World) -> None:
    """The row's code comes back with the row's status (its worst), naming what the row expects."""
    mine = [c for c in checks if c["code"] == case.code]
    if case.status is None:
        assert mine == [], checks
        return
    assert mine, f"no {case.code} in {checks}"
    assert max(SEVERITY[c["status"]] for c in mine) == SEVERITY[case.status], mine
    fragment = w.resolve(case.detail)
    assert any(fragment in c["detail"] for c in mine if c["status"] == case.status), (fragment, mine)


# --- the table, through every path --------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_is_the_same_through_service_api_and_form(world: World, client: Any, case: Case) -> None:
    assert PeeringRequest.objects.count() == 0  # rows do not see each other's changes
    if case.setup:
        case.setup(world)
    filed_before = PeeringRequest.objects.count()
    user = world.user(case.user)
    fields = {
        "requester_vpc": world.vpc_id(case.requester),
        "accepter_vpc": world.vpc_id(case.accepter),
        "justification": JUSTIFICATION,
        **{name: world.resolve(value) for name, value in case.body.items()},
    }
    can_file = case.status != "fail"

    # 1. the service
    evaluation = preflight.peering_request_evaluate(
        draft=preflight.PeeringDraft(**fields), department_ids=permissions.department_ids(user), viewer=user
    )
    checks = evaluation.checks
    _assert_row(case, checks, world)
    # The table's pass, warn and absent rows are requests that can be filed: warnings never block.
    assert evaluation.ok is can_file, _fails(checks)

    # 2. the API: preflight returns the same checks
    api = _api_as(user)
    answered = api.post(PREFLIGHT_URL, fields, format="json")
    assert answered.status_code == 200, answered.json()
    assert answered.json()["checks"] == checks
    assert answered.json()["ok"] is can_file

    # 3. the form: "Run checks" and the live checks render the same checks, escaped
    client.force_login(user)
    form_data = _form_data(fields)
    page = client.post(FORM_URL, {**form_data, "check": "1"})
    live = client.post(LIVE_CHECK_URL, form_data)
    assert page.status_code == 200
    assert live.status_code == 200
    page_html, live_html = page.content.decode(), live.content.decode()
    if case.form_refuses:
        # The form offers only the caller's VPCs as requester and VPCs with owners as peer, so it
        # refuses the choice before any check can run.
        refused = fields[case.form_refuses]
        assert f"Select a valid choice. {escape(refused)} is not one of the available choices." in page_html
        assert _rendered_checks(page_html) == []
        assert _rendered_checks(live_html) == []
        assert "Choose both VPCs to see the checks and the plan." in live_html
        # The live check names the field the form refused, rather than checking without it.
        assert "Cannot be filed yet: " in live_html
        assert f"Select a valid choice. {escape(refused)} is not one of the available choices." in live_html
    else:
        expected = [_rendered(c) for c in checks]
        for html in (page_html, live_html):
            assert _rendered_checks(html) == expected
            for check in checks:
                if check["code"] == case.code:
                    assert f"<code>{case.code}</code> {escape(check['detail'])}" in html
            assert ("will be refused" in html) is not can_file
            assert ("all can work" in html) is can_file
        if can_file:
            assert "Cannot be filed yet" not in live_html
        else:
            blocked = "; ".join(c["code"] for c in _fails(checks))
            assert f"Cannot be filed yet: these checks fail: {blocked}" in live_html
    assert PeeringRequest.objects.count() == filed_before  # checking files nothing

    # 2 (continued). the API: create files it, or refuses with the preflight's checks
    created = api.post(URL, fields, format="json")
    body = created.json()
    if can_file:
        assert created.status_code == 201, body
        assert body["status"] == "pending_approval"
        assert body["checks"] == checks
        assert PeeringRequest.objects.count() == filed_before + 1
        assert PeeringRequest.objects.get(pk=body["id"]).checks == checks
    else:
        assert created.status_code == 400, body
        assert body["type"] == "validation_error"
        assert body["checks"] == checks
        assert body["errors"] == [{"code": c["code"], "detail": c["detail"], "attr": c["attr"]} for c in _fails(checks)]
        assert case.code in [e["code"] for e in body["errors"]]
        assert PeeringRequest.objects.count() == filed_before


# --- the table itself ---------------------------------------------------------------------------
def _codes_run_checks_can_emit() -> dict[str, set[str]]:
    """Every code in `checks.py`, with the statuses it can be reported with, read from the source."""
    source = Path(rules.__file__).read_text()
    emitted: dict[str, set[str]] = {}
    for status, code in re.findall(r"_(fail|warn|pass)\(\s*\"([a-z_]+)\"", source):
        emitted.setdefault(code, set()).add(status)
    for code in re.findall(r"_quota_level\(\s*\"([a-z_]+)\"", source):
        emitted.setdefault(code, set()).update({"pass", "warn", "fail"})
    return emitted


def test_the_table_covers_every_check_code_and_status() -> None:
    emitted = _codes_run_checks_can_emit()
    assert len(emitted) >= 20, emitted  # the source scan itself works
    rows: dict[str, set[str | None]] = {}
    for case in CASES:
        rows.setdefault(case.code, set()).add(case.status)
    assert set(rows) <= set(emitted), set(rows) - set(emitted)
    for code, statuses in emitted.items():
        assert statuses <= rows.get(code, set()), f"{code}: no row for {statuses - rows.get(code, set())}"
        # A code that never passes needs a row where a valid request does not report it, except
        # the two whose passing counterpart has a code of its own (vpc_ownership, accepter_owner).
        if "pass" not in statuses and code not in {"not_your_vpc", "no_approver"}:
            assert None in rows[code], f"{code}: no row where it is absent from a valid request"
    assert "pass" in rows["vpc_ownership"]
    assert "pass" in rows["accepter_owner"]
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("used", "limit", "status"),
    [
        (1, 1, "warn"),  # at the limit is not over it
        (2, 1, "fail"),
        (39, 50, "pass"),
        (40, 50, "warn"),  # exactly 80 %
        (50, 50, "warn"),
        (51, 50, "fail"),
        (3, 4, "pass"),  # 75 %
        (19, 25, "pass"),
        (20, 25, "warn"),
        (26, 25, "fail"),
    ],
)
def test_quota_threshold_warns_from_80_percent_and_fails_over_the_limit(used: int, limit: int, status: str) -> None:
    vpc_a = rules.VpcFacts("vpc-a", "a", "111111111111", "us-east-1", ("10.0.0.0/16",))
    vpc_b = rules.VpcFacts("vpc-b", "b", "222222222222", "us-east-1", ("10.1.0.0/16",))
    results = rules.run_checks(
        rules.CheckInput(
            requester_vpc_id="vpc-a",
            accepter_vpc_id="vpc-b",
            requester=vpc_a,
            accepter=vpc_b,
            requester_is_callers=True,
            requester_limits=rules.Limits(peerings_per_vpc=limit, outstanding_per_account=limit),
            usage=rules.Usage(requester_vpc_peerings=used - 1, requester_outstanding=used - 1),
        )
    )
    for code, subject in (
        ("quota_peerings_per_vpc", "peerings of a (vpc-a)"),
        ("quota_outstanding_requests", "outstanding peering requests of account 111111111111"),
    ):
        mine = [r for r in results if r.code == code and r.detail.startswith(subject)]
        assert len(mine) == 1, results
        assert mine[0].status == status
        assert f": {used} of {limit} after this request" in mine[0].detail


# --- filing through the form --------------------------------------------------------------------
def test_the_form_files_despite_warnings_and_refuses_a_failing_check(world: World, client: Any) -> None:
    fiona = world.user("fiona")
    client.force_login(fiona)
    base = {"requester_vpc": world.ids[FINANCE], "justification": JUSTIFICATION}

    refused = client.post(
        FORM_URL,
        {**base, "accepter_vpc": world.ids[SERVICES], "requester_destination_cidrs": "8.8.8.0/24", "submit": "1"},
    )
    assert refused.status_code == 200
    assert "The request was not filed: 8.8.8.0/24 is not a private address range" in refused.content.decode()
    assert '<li class="check-fail"><strong>FAIL</strong> <code>non_private_cidr</code>' in refused.content.decode()
    assert PeeringRequest.objects.count() == 0

    # inter-region and a stale inventory only warn
    synced(FINANCE, "services-euw1", ago=timedelta(hours=48))(world)
    filed_ = client.post(FORM_URL, {**base, "accepter_vpc": world.ids["services-euw1"], "submit": "1"})
    assert filed_.status_code == 302
    created = PeeringRequest.objects.get()
    assert filed_["Location"] == f"/requests/{created.pk}/"
    assert created.requested_by == fiona
    warned = {c["code"] for c in created.checks if c["status"] == "warn"}
    assert warned == {"inter_region", "inventory_stale"}
    assert not _fails(created.checks)


def test_live_check_does_not_offer_to_file_with_a_ticked_route_table_that_is_gone(world: World, client: Any) -> None:
    """Fiona ticked services-private; before she files, a sync finds it deleted in AWS.

    The API refuses the request (route_table_not_found) and "Run checks" shows the form error; the
    live check must not tell her it can be filed, which it would if it quietly dropped the ticked
    table and checked "all of the peer's route tables" instead.
    """
    private = world.ids["services-private"]
    world.table("services-private").delete()
    fiona = world.user("fiona")
    fields = {
        "requester_vpc": world.ids[FINANCE],
        "accepter_vpc": world.ids[SERVICES],
        "justification": JUSTIFICATION,
        "accepter_route_tables": [private],
    }
    preflight = _api_as(fiona).post(PREFLIGHT_URL, fields, format="json").json()
    assert preflight["ok"] is False
    assert [c["code"] for c in _fails(preflight["checks"])] == ["route_table_not_found"]

    client.force_login(fiona)
    page = client.post(FORM_URL, {**_form_data(fields), "check": "1"}).content.decode()
    assert f"Select a valid choice. {private} is not one of the available choices." in page

    live = client.post(LIVE_CHECK_URL, _form_data(fields)).content.decode()
    assert "Cannot be filed yet" in live, "the live check offers to file a request the API refuses"
    assert not re.search(r'<button type="submit" name="submit" value="1"\s*>', live)


def test_rows_start_from_the_untouched_demo_world(world: World) -> None:
    """The module-long world is as `demo.register_portal` left it: earlier rows were rolled back."""
    assert PeeringRequest.objects.count() == 0
    assert ObservedPeering.objects.count() == 0
    assert set(
        AwsAccount.objects.values_list("max_peerings_per_vpc", "max_outstanding_requests", "max_routes_per_table")
    ) == {(None, None, None)}
    assert world.vpc(SERVICES).cidr_list() == ["10.0.0.0/16"]
    assert [len(rt.routes) for rt in world.vpc(FINANCE).route_tables.all()] == [2]
    assert world.vpc(SERVICES).route_tables.count() == 2
    assert all(v.dns_hostnames and v.dns_support and v.synced_at for v in Vpc.objects.all())
    # and the sandbox holds no peering connection (the AWS row's connection was deleted after it)
    live = [
        p
        for p in ec2_as("222222222222", "us-east-1").describe_vpc_peering_connections()["VpcPeeringConnections"]
        if p["Status"]["Code"] in LIVE_AWS_STATES
    ]
    assert live == []
