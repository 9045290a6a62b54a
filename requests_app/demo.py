"""The demo world of the README, built in the AWS sandbox and registered in the portal.

This builds fixtures *in the sandbox* (VPCs, CIDR blocks, route tables), which the portal itself
never does, so it talks to boto3 directly rather than through the portal's gateway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from django.contrib.auth import get_user_model
from django.db import transaction

from requests_app import inventory
from requests_app.models import AwsAccount, Department, Vpc

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


def register_portal(password: str) -> dict[str, Any]:
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
        inventory.sync_account(a).as_dict()
        for a in AwsAccount.objects.filter(account_id__in=[a.account_id for a in ACCOUNTS])
    ]
    owners = [users[u] for u, (_, owns, _) in USERS.items() if owns]
    services_names = [v.name for a in ACCOUNTS for v in a.vpcs if v.services]
    for vpc in Vpc.objects.filter(name__in=services_names, present_in_aws=True):
        vpc.is_services_vpc = True
        vpc.save(update_fields=["is_services_vpc"])
        vpc.owners.set(owners)
    return {"synced": reports}


def seed(password: str | None = None) -> dict[str, Any]:
    password = password or os.environ.get("DEMO_PASSWORD", "peering-demo")
    build_sandbox()
    return register_portal(password)
