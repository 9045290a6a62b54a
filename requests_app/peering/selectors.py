"""Read queries, shaped for the pages and endpoints that use them (no N+1)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from requests_app.domain.status import Status
from requests_app.models import AuditEvent, PeeringRequest
from requests_app.peering import permissions


def requests_visible_to(user: User) -> QuerySet[PeeringRequest]:
    qs = PeeringRequest.objects.select_related(
        "requester_vpc__account__department",
        "accepter_vpc__account__department",
        "requested_by",
        "decided_by",
        "department",
    ).prefetch_related("steps")
    return _visible(user, qs)


def _visible(user: User, qs: QuerySet[PeeringRequest]) -> QuerySet[PeeringRequest]:
    if permissions.is_admin(user):
        return qs
    return qs.filter(
        Q(department_id__in=permissions.department_ids(user)) | Q(accepter_vpc_id__in=permissions.owned_vpc_ids(user))
    )


def requests_for_api(user: User) -> QuerySet[PeeringRequest]:
    """What the API's request serializer reads, and nothing more (the pages need more joins)."""
    qs = PeeringRequest.objects.select_related(
        "requester_vpc", "accepter_vpc", "requested_by", "decided_by", "department"
    ).prefetch_related("steps")
    return _visible(user, qs)


def request_is_visible(user: User, request_id: uuid.UUID | str) -> bool:
    try:
        pk = uuid.UUID(str(request_id))
    except ValueError:
        return False
    return _visible(user, PeeringRequest.objects.filter(pk=pk)).exists()


def approval_queue_for(user: User) -> QuerySet[PeeringRequest]:
    """Requests waiting on VPCs this user owns, oldest first; their own requests excluded."""
    return (
        requests_visible_to(user)
        .filter(status=Status.PENDING_APPROVAL, accepter_vpc_id__in=permissions.owned_vpc_ids(user))
        .exclude(requested_by=user)
        .order_by("created_at")
    )


def events_visible_to(user: User) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("request")
    if permissions.is_admin(user):
        return qs
    visible = requests_visible_to(user).values("pk")
    return qs.filter(request_id__in=visible)
