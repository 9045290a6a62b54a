"""What counts against AWS's quotas: the limits of an account and the peerings and requests that use them."""

from __future__ import annotations

import uuid

from django.db.models import Q

from requests_app.domain import checks as rules
from requests_app.domain.status import (
    Status,
)
from requests_app.inventory import network
from requests_app.models import AwsAccount, ObservedPeering, PeeringRequest, Vpc


def limits_of(account: AwsAccount) -> rules.Limits:
    defaults = rules.Limits()

    def pick(override: int | None, default: int) -> int:
        return default if override is None else override  # 0 is a real limit: none allowed

    return rules.Limits(
        peerings_per_vpc=pick(account.max_peerings_per_vpc, defaults.peerings_per_vpc),
        outstanding_per_account=pick(account.max_outstanding_requests, defaults.outstanding_per_account),
        routes_per_table=pick(account.max_routes_per_table, defaults.routes_per_table),
    )


def vpc_peering_count(vpc: Vpc, exclude_request: uuid.UUID | None) -> int:
    portal = PeeringRequest.objects.filter(Q(requester_vpc=vpc) | Q(accepter_vpc=vpc), status__in=network.HOLDING)
    if exclude_request is not None:
        portal = portal.exclude(pk=exclude_request)
    unmanaged = ObservedPeering.objects.filter(
        Q(requester_vpc_id=vpc.vpc_id) | Q(accepter_vpc_id=vpc.vpc_id), status="active", portal_request_id=""
    )
    return portal.count() + unmanaged.count()


def outstanding_count(account: AwsAccount, exclude_request: uuid.UUID | None) -> int:
    in_flight = PeeringRequest.objects.filter(
        requester_vpc__account=account, status__in=[Status.APPROVED, Status.PROVISIONING]
    )
    if exclude_request is not None:
        in_flight = in_flight.exclude(pk=exclude_request)
    unmanaged = ObservedPeering.objects.filter(
        requester_account_id=account.account_id, status="pending-acceptance", portal_request_id=""
    )
    return in_flight.count() + unmanaged.count()


def outstanding_counts(accounts: list[AwsAccount]) -> dict[int, int]:
    """`outstanding_count` of each account, in two queries."""
    counts: dict[int, int] = dict.fromkeys((a.pk for a in accounts), 0)
    for account_pk in PeeringRequest.objects.filter(
        requester_vpc__account__in=accounts, status__in=[Status.APPROVED, Status.PROVISIONING]
    ).values_list("requester_vpc__account__id", flat=True):  # the account's pk (django-stubs misreads `account_id`)
        counts[account_pk] += 1
    by_number = {a.account_id: a.pk for a in accounts}
    for number in ObservedPeering.objects.filter(
        requester_account_id__in=list(by_number), status="pending-acceptance", portal_request_id=""
    ).values_list("requester_account_id", flat=True):
        counts[by_number[number]] += 1
    return counts
