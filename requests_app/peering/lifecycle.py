"""A request's moves from state to state: checked against the tables, conditional, audited and told."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.core.errors import PortalError
from requests_app.domain.status import (
    Action,
    ActionNotAllowed,
    InvalidTransition,
    Status,
    check_action,
    check_transition,
)
from requests_app.inventory.network import HOLDS_PAIR
from requests_app.models import PeeringRequest, Vpc
from requests_app.peering import news
from requests_app.peering import selectors as peering_selectors


# --- the request lifecycle ------------------------------------------------------------------
def get_visible_request(actor: User, request_id: uuid.UUID | str) -> PeeringRequest:
    """The request if the actor may see it; otherwise 404, so ids cannot be probed."""
    try:
        pk = uuid.UUID(str(request_id))
    except ValueError:
        pk = None
    request = peering_selectors.requests_visible_to(actor).filter(pk=pk).first() if pk else None
    if request is None:
        raise PortalError("not_found", "No such peering request.", status=404)
    return request


def request_transition(
    request: PeeringRequest,
    target: Status,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    action: AuditAction,
    message: str = "",
    data: Mapping[str, object] | None = None,
    **fields: Any,
) -> PeeringRequest:
    """Move `request` to `target` if it is still in the state we read; audit it in the same transaction.

    The conditional update is the lock: of two approvers (or two workers) only one matches.
    """
    current = request.status
    try:
        check_transition(current, target)
    except InvalidTransition as exc:
        raise PortalError("invalid_transition", str(exc), status=409) from None
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                updated = PeeringRequest.objects.filter(pk=request.pk, status=current).update(
                    status=target, updated_at=now, **fields
                )
        except IntegrityError:
            other = PeeringRequest.objects.filter(HOLDS_PAIR, pair_key=request.pair_key).exclude(pk=request.pk).first()
            raise PortalError(
                "duplicate_peering",
                f"{request.requester_vpc.label} and {request.accepter_vpc.label} already have another "
                f"peering ({f'request {other.pk}, {other.status}' if other else 'another request'}); "
                "two VPCs can have only one",
                status=409,
            ) from None
        if updated != 1:
            fresh = PeeringRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first()
            raise PortalError(
                "invalid_transition",
                f"the request changed while you were acting: it is now {fresh}, not {current}",
                status=409,
            )
        request.status = target
        request.updated_at = now
        for name, value in fields.items():
            setattr(request, name, value)
        audit.record(
            action=action,
            actor=actor,
            actor_label=actor_label,
            request=request,
            from_status=current,
            to_status=target,
            message=message,
            data=data,
        )
        news.status_changed(request, target, message, action=action)
    return request


def lock_vpcs(request: PeeringRequest) -> None:
    """Serialise decisions that touch the same VPCs until the transaction ends.

    Two approvals of overlapping spokes of one hub would each see the other still pending (a
    warning) and both pass; holding both VPC rows makes the second wait for the first and then
    see it approved.
    """
    list(Vpc.objects.select_for_update().filter(pk__in=[request.requester_vpc_id, request.accepter_vpc_id]))


def require(reason: str | None, *, self_check: bool = False) -> None:
    if reason:
        raise PortalError("self_approval" if self_check else "permission_denied", reason, status=403)


def require_action(action: Action, request: PeeringRequest) -> None:
    try:
        check_action(action, request.status)
    except ActionNotAllowed as exc:
        raise PortalError("invalid_transition", str(exc), status=409) from None


# Expiry runs with the reconciler, every cycle, and has always been recorded under its name.
EXPIRY_LABEL = "reconciler"


def expire_pending(max_age_seconds: int) -> int:
    """Requests left pending approval longer than AWS keeps a request pending become `expired`."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds)
    expired = 0
    for request in PeeringRequest.objects.filter(status=Status.PENDING_APPROVAL, created_at__lt=cutoff).select_related(
        "requester_vpc", "accepter_vpc"
    ):
        try:
            request_transition(
                request,
                Status.EXPIRED,
                actor_label=EXPIRY_LABEL,
                action=AuditAction.REQUEST_EXPIRED,
                message=f"no decision within {max_age_seconds // 86400} days",
            )
        except PortalError:
            continue  # decided in the meantime
        expired += 1
    return expired
