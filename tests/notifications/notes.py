"""Helpers of the notification tests: filing a request, and the outbox's rows."""

from __future__ import annotations

from typing import Any

from requests_app.models import Notification, PeeringRequest
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from tests.fixtures.world import DemoWorld


def submit(world: DemoWorld, username: str = "fiona") -> PeeringRequest:
    """finance-app → services-use1, filed through the service."""
    vpcs = world.vpcs
    return peering_services.peering_request_submit(
        actor=world.users[username],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id,
            accepter_vpc=vpcs["services-use1"].vpc_id,
            justification="notify me",
        ),
    )


def notes_of(request_id: Any, event: str) -> list[Notification]:
    return list(Notification.objects.filter(request_id=request_id, event=event))


def outbox_row(**fields: Any) -> Notification:
    """A pending notification as the outbox writes it, without filing a request."""
    defaults = {
        "event": "request.approved",
        "recipients": ["fiona@example.com"],
        "subject": "Peering: approved by nina",
        "body": "Your peering request approved by nina.\n",
    }
    return Notification.objects.create(**{**defaults, **fields})
