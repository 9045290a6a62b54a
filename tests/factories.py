"""Rows for tests that need the database but not the AWS sandbox (factory_boy).

The demo world (`demo_world`) builds real VPCs in the sandbox and syncs them, which costs seconds;
a test about rules, pages or counts only needs rows shaped like a sync's, which these make (and
`demo_rows`, in tests/fixtures/world.py, makes the same demo world with them).
"""

from __future__ import annotations

import itertools
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from requests_app.domain import cidrs
from requests_app.domain.status import Status
from requests_app.models import (
    AwsAccount,
    Department,
    ManagedRoute,
    ObservedPeering,
    PeeringRequest,
    RouteTable,
    Vpc,
    VpcCidr,
)

_hex = itertools.count(0x1000)


def aws_id(prefix: str) -> str:
    """A fresh id in AWS's shape: `vpc-`, `rtb-` or `pcx-` and 17 hex digits."""
    return f"{prefix}-{next(_hex):017x}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"dept{n}")
    name = factory.LazyAttribute(lambda d: d.slug.title())


class AwsAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AwsAccount
        django_get_or_create = ("account_id",)

    account_id = factory.Sequence(lambda n: f"{600000000000 + n}")
    name = factory.LazyAttribute(lambda a: f"account-{a.account_id}")
    department = factory.SubFactory(DepartmentFactory)
    role_arn = factory.LazyAttribute(lambda a: f"arn:aws:iam::{a.account_id}:role/PeeringPortalRole")
    regions = factory.LazyFunction(lambda: ["us-east-1"])
    last_synced_at = factory.LazyFunction(timezone.now)


class VpcFactory(factory.django.DjangoModelFactory):
    """A VPC as a sync leaves it; `cidrs=[...]` gives its blocks (primary first)."""

    class Meta:
        model = Vpc
        skip_postgeneration_save = True

    vpc_id = factory.LazyFunction(lambda: aws_id("vpc"))
    account = factory.SubFactory(AwsAccountFactory)
    region = "us-east-1"
    name = factory.Sequence(lambda n: f"vpc{n}")
    dns_hostnames = True
    dns_support = True
    synced_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def cidrs(self, create: bool, blocks: list[str] | None, **_: Any) -> None:
        for index, block in enumerate(blocks or []):
            first, last = cidrs.address_range(block)
            VpcCidr.objects.create(vpc=self, cidr=block, is_primary=index == 0, first_address=first, last_address=last)

    @factory.post_generation
    def owners(self, create: bool, users: list[Any] | None, **_: Any) -> None:
        if users:
            self.owners.set(users)


class RouteTableFactory(factory.django.DjangoModelFactory):
    """A route table with its local route; `routes=[(destination, target), ...]` adds more."""

    class Meta:
        model = RouteTable

    route_table_id = factory.LazyFunction(lambda: aws_id("rtb"))
    vpc = factory.SubFactory(VpcFactory)
    name = factory.Sequence(lambda n: f"table{n}")
    is_main = False

    @factory.lazy_attribute
    def routes(self) -> list[dict[str, str]]:
        return [{"destination": block, "target": "local", "state": "active"} for block in self.vpc.cidr_list()]

    @classmethod
    def _adjust_kwargs(cls, **kwargs: Any) -> dict[str, Any]:
        extra = kwargs.pop("extra_routes", None) or []
        kwargs["routes"] = [*kwargs["routes"], *({"destination": d, "target": t, "state": "active"} for d, t in extra)]
        return kwargs


class PeeringRequestFactory(factory.django.DjangoModelFactory):
    """A request in any state, as the use cases would have left it (without the audit trail)."""

    class Meta:
        model = PeeringRequest

    requester_vpc = factory.SubFactory(VpcFactory)
    accepter_vpc = factory.SubFactory(VpcFactory)
    pair_key = factory.LazyAttribute(
        lambda r: PeeringRequest.make_pair_key(r.requester_vpc.vpc_id, r.accepter_vpc.vpc_id)
    )
    status = Status.PENDING_APPROVAL
    justification = "needs the directory"
    requested_by = factory.SubFactory(UserFactory)
    department = factory.LazyAttribute(lambda r: r.requester_vpc.account.department)


class ManagedRouteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ManagedRoute

    request = factory.SubFactory(PeeringRequestFactory)
    side = ManagedRoute.Side.ACCEPTER
    route_table_id = factory.LazyFunction(lambda: aws_id("rtb"))
    destination = "10.9.0.0/16"
    state = ManagedRoute.State.PLANNED
    changed_at = factory.LazyFunction(timezone.now)


class ObservedPeeringFactory(factory.django.DjangoModelFactory):
    """A connection a sync found in AWS (not the portal's unless `portal_request_id` is set)."""

    class Meta:
        model = ObservedPeering

    connection_id = factory.LazyFunction(lambda: aws_id("pcx"))
    requester_vpc_id = factory.LazyFunction(lambda: aws_id("vpc"))
    accepter_vpc_id = factory.LazyFunction(lambda: aws_id("vpc"))
    requester_account_id = "999999999999"
    accepter_account_id = "999999999999"
    status = "active"
    first_seen = factory.LazyFunction(timezone.now)
    seen_at = factory.LazyFunction(timezone.now)


def route_rows(request: PeeringRequest, state: str) -> list[ManagedRoute]:
    """A request's routes as its plan has them (every table of each side, to the other's blocks)."""
    rows = []
    for side, vpc, peer in (
        ("requester", request.requester_vpc, request.accepter_vpc),
        ("accepter", request.accepter_vpc, request.requester_vpc),
    ):
        for table in vpc.route_tables.all():
            for block in peer.cidr_list():
                rows.append(
                    ManagedRouteFactory(
                        request=request, side=side, route_table_id=table.route_table_id, destination=block, state=state
                    )
                )
    return rows
