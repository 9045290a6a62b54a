"""Requests pending approval too long expire (the reconciler's other job), freeing their VPC pair.

Marked `integration` (and run on committed transactions) as it was among the reconciler's tests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from requests_app.models import PeeringRequest
from requests_app.peering import lifecycle, preflight
from requests_app.peering import services as peering_services
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_requests_pending_approval_too_long_expire(demo_rows: DemoWorld, api: Any, settings: Any) -> None:
    vpcs = demo_rows.vpcs
    old = peering_services.peering_request_submit(
        actor=demo_rows.users["fiona"],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id, accepter_vpc=vpcs["services-use1"].vpc_id, justification="old"
        ),
    )
    fresh = peering_services.peering_request_submit(
        actor=demo_rows.users["harry"],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["hr-portal"].vpc_id, accepter_vpc=vpcs["services-use1"].vpc_id, justification="new"
        ),
    )
    PeeringRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))

    assert lifecycle.expire_pending(7 * 24 * 3600) == 1
    assert PeeringRequest.objects.get(pk=old.pk).status == "expired"
    assert PeeringRequest.objects.get(pk=fresh.pk).status == "pending_approval"
    event = PeeringRequest.objects.get(pk=old.pk).events.get(action="request.expired")
    assert (event.from_status, event.to_status, event.actor_label) == ("pending_approval", "expired", "reconciler")
    # The pair is free again: expiry released the one-peering-per-pair slot.
    again = api("fiona").post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": vpcs["finance-app"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "again",
        },
        format="json",
    )
    assert again.status_code == 201, again.json()
