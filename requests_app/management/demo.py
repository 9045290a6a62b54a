"""The demo world of the README, built in the AWS sandbox and registered in the portal.

This builds fixtures *in the sandbox* (VPCs, CIDR blocks, route tables), which the portal itself
never does, so it talks to boto3 directly rather than through the portal's gateway.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

import boto3
from django.contrib.auth import get_user_model
from django.db import transaction

from requests_app.inventory import sync
from requests_app.models import AwsAccount, Department, PeeringRequest, Vpc
from requests_app.peering import drift, preflight
from requests_app.peering import services as peering_services
from requests_app.peering.saga import runner

ROLE_NAME = "PeeringPortalRole"


@dataclass(frozen=True)
class DemoVpc:
    name: str
    region: str
    cidrs: tuple[str, ...]
    extra_route_tables: tuple[str, ...] = ()
    services: bool = False


@dataclass(frozen=True)
class DemoAccount:
    account_id: str
    name: str
    department: str
    vpcs: tuple[DemoVpc, ...]

    @property
    def regions(self) -> list[str]:
        return sorted({v.region for v in self.vpcs})

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{ROLE_NAME}"


DEPARTMENTS = {"platform": "Platform", "finance": "Finance", "hr": "HR", "engineering": "Engineering"}
ACCOUNTS = (
    DemoAccount(
        "111111111111",
        "shared-services",
        "platform",
        (
            DemoVpc("services-use1", "us-east-1", ("10.0.0.0/16",), ("services-private",), services=True),
            DemoVpc("services-euw1", "eu-west-1", ("10.100.0.0/16",), services=True),
        ),
    ),
    DemoAccount(
        "222222222222",
        "finance-prod",
        "finance",
        (DemoVpc("finance-app", "us-east-1", ("10.1.0.0/16", "10.11.0.0/16")),),
    ),
    DemoAccount("333333333333", "hr-prod", "hr", (DemoVpc("hr-portal", "eu-west-1", ("10.2.0.0/16",)),)),
    DemoAccount(
        "444444444444",
        "engineering-dev",
        "engineering",
        (
            DemoVpc("eng-build", "us-east-1", ("10.3.0.0/16",)),
            DemoVpc("eng-sandbox", "us-east-1", ("10.0.128.0/20",)),
        ),
    ),
)
# username -> (departments, owns the Services VPCs, superuser)
USERS = {
    "admin": ((), False, True),
    "nina": (("platform",), True, False),
    "fiona": (("finance",), False, False),
    "harry": (("hr",), False, False),
    "erin": (("engineering",), False, False),
    "sam": (("finance",), True, False),
}


def _ec2(account_id: str, region: str) -> Any:
    creds = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{ROLE_NAME}", RoleSessionName="demo-seed"
    )["Credentials"]
    return boto3.client(
        "ec2",
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _tag(ec2: Any, resource_id: str, name: str) -> None:
    ec2.create_tags(Resources=[resource_id], Tags=[{"Key": "Name", "Value": name}])


def build_sandbox() -> None:
    """Create the demo VPCs in the sandbox; existing ones (found by Name tag) are kept."""
    clients: dict[tuple[str, str], Any] = {}
    for account in ACCOUNTS:
        for spec in account.vpcs:
            key = (account.account_id, spec.region)
            ec2 = clients[key] = clients.get(key) or _ec2(*key)
            existing = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [spec.name]}])["Vpcs"]
            existing = [v for v in existing if any(t["Value"] == spec.name for t in v.get("Tags", []))]
            if existing:
                continue
            vpc_id = ec2.create_vpc(CidrBlock=spec.cidrs[0])["Vpc"]["VpcId"]
            _tag(ec2, vpc_id, spec.name)
            for cidr in spec.cidrs[1:]:
                ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=cidr)
            ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
            ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
            main = ec2.describe_route_tables(
                Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
            )["RouteTables"]
            main = [t for t in main if t["VpcId"] == vpc_id]
            if main:
                _tag(ec2, main[0]["RouteTableId"], f"{spec.name}-main")
            for table_name in spec.extra_route_tables:
                table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
                _tag(ec2, table_id, table_name)


class Registered(TypedDict):
    synced: list[sync.SyncReportDict]  # each demo account's first sync


class Seeded(Registered):
    history: list[str]  # what each story of HISTORY did, in words


def register_portal(password: str) -> Registered:
    """Departments, users, accounts, Services VPCs and owners; then read the inventory from AWS."""
    User = get_user_model()
    with transaction.atomic():
        departments = {
            slug: Department.objects.update_or_create(slug=slug, defaults={"name": name})[0]
            for slug, name in DEPARTMENTS.items()
        }
        users = {}
        for username, (depts, _, superuser) in USERS.items():
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            user.set_password(password)
            user.is_superuser = user.is_staff = superuser
            user.save()
            user.departments.set([departments[d] for d in depts])
            users[username] = user
        for spec in ACCOUNTS:
            AwsAccount.objects.update_or_create(
                account_id=spec.account_id,
                defaults={
                    "name": spec.name,
                    "department": departments[spec.department],
                    "role_arn": spec.role_arn,
                    "regions": spec.regions,
                },
            )
    reports = [
        sync.sync_account(a).as_dict()
        for a in AwsAccount.objects.filter(account_id__in=[a.account_id for a in ACCOUNTS])
    ]
    owners = [users[u] for u, (_, owns, _) in USERS.items() if owns]
    services_names = [v.name for a in ACCOUNTS for v in a.vpcs if v.services]
    for vpc in Vpc.objects.filter(name__in=services_names, present_in_aws=True):
        vpc.is_services_vpc = True
        vpc.save(update_fields=["is_services_vpc"])
        vpc.owners.set(owners)
    return {"synced": reports}


def seed(password: str | None = None) -> Seeded:
    password = password or os.environ.get("DEMO_PASSWORD", "peering-demo")
    build_sandbox()
    registered = register_portal(password)
    return {**registered, "history": seed_history()}


# --- a short history, played through the real flow --------------------------------------------------
# Each story: (ticket, filed by, requester VPC, accepter VPC, what happens next). The ticket
# reference marks it, so a second run finds it and adds nothing.
HISTORY = (
    ("DEMO-101", "fiona", "finance-app", "services-use1", "active"),
    ("DEMO-102", "harry", "hr-portal", "services-euw1", "active"),
    ("DEMO-103", "erin", "eng-build", "services-use1", "drift"),
    ("DEMO-104", "erin", "eng-build", "services-euw1", "rejected"),
    ("DEMO-105", "erin", "eng-sandbox", "services-euw1", "failed"),
    ("DEMO-106", "harry", "hr-portal", "services-use1", "pending"),
)
JUSTIFICATIONS = {
    "finance-app": "The payments app needs the directory (LDAP) and central logging.",
    "hr-portal": "HR portal single sign-on against the directory, and security scanning.",
    "eng-build": "Build agents pull from the artifact proxy in the Services VPC.",
    "eng-sandbox": "Sandbox experiments need the directory.",
}


def seed_history() -> list[str]:
    """Active peerings in both regions and three accounts, one pending in nina's queue, one
    rejected, one failed with its reason and one with drift found by the reconciler: made the way
    users make them (the use cases, the real saga against the sandbox, the reconciler), never by
    writing rows, so the audit trail is the real one and verifies. Returns what it did."""
    users = {u.username: u for u in get_user_model().objects.filter(username__in=USERS)}
    vpcs = {v.name: v for v in Vpc.objects.filter(present_in_aws=True).exclude(name="").select_related("account")}
    told = []
    for ticket, filer, requester, accepter, story in HISTORY:
        if PeeringRequest.objects.filter(external_ref=ticket, requester_vpc=vpcs[requester]).exists():
            continue  # played already, in this sandbox
        filed = peering_services.peering_request_submit(
            actor=users[filer],
            draft=preflight.PeeringDraft(
                requester_vpc=vpcs[requester].vpc_id,
                accepter_vpc=vpcs[accepter].vpc_id,
                justification=JUSTIFICATIONS[requester],
                external_ref=ticket,
            ),
        )
        if story == "pending":
            told.append(f"{ticket} {requester} → {accepter}: waiting for nina's approval")
            continue
        if story == "rejected":
            peering_services.peering_request_reject(
                actor=users["nina"],
                request_id=filed.pk,
                comment="eng-build already peers with services-use1; the EU hub is for EU workloads.",
            )
            told.append(f"{ticket} {requester} → {accepter}: rejected by nina")
            continue
        if story == "failed":
            _claim_the_route_by_hand(vpcs[accepter], vpcs[requester].cidr_list()[0])
        peering_services.peering_request_approve(
            actor=users["nina"], request_id=filed.pk, comment="Approved for the demo."
        )
        runner.run(str(filed.pk), "provision")  # the saga a worker runs, here and now
        if story == "drift":
            _delete_a_route_by_hand(filed.pk)
            drift.reconcile(filed.pk)
        done = PeeringRequest.objects.get(pk=filed.pk)
        told.append(f"{ticket} {requester} → {accepter}: {done.status}{' with drift' if done.drift else ''}")
    return told


def _claim_the_route_by_hand(hub: Vpc, destination: str) -> None:
    """Someone routes `destination` to an internet gateway in the hub's main table, in the console,
    after the request was approved: the saga finds the route taken, undoes its work and fails."""
    ec2 = _ec2(hub.account.account_id, hub.region)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=hub.vpc_id)
    main = hub.route_tables.get(is_main=True).route_table_id
    ec2.create_route(RouteTableId=main, DestinationCidrBlock=destination, GatewayId=igw)


def _delete_a_route_by_hand(request_id: uuid.UUID) -> None:
    """Someone deletes one of the peering's routes in the hub, in the console."""
    request = PeeringRequest.objects.select_related("accepter_vpc__account").get(pk=request_id)
    route = request.routes.filter(side="accepter").order_by("id").first()
    assert route is not None
    hub = request.accepter_vpc
    _ec2(hub.account.account_id, hub.region).delete_route(
        RouteTableId=route.route_table_id, DestinationCidrBlock=route.destination
    )
