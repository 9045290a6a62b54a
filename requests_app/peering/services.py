"""The peering use cases: one function each, keyword-only, taking the actor.

Each runs in one transaction: check permission and transition, change the row, append the audit
event, and send worker tasks (by name) only once the transaction has committed.
"""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.core import outbox
from requests_app.core.errors import PortalError
from requests_app.core.validation import clean_line, clean_text
from requests_app.domain import text
from requests_app.domain.status import (
    Action,
    Status,
)
from requests_app.models import PeeringRequest, Vpc
from requests_app.peering import news, permissions
from requests_app.peering.lifecycle import (
    get_visible_request,
    lock_vpcs,
    request_transition,
    require,
    require_action,
)
from requests_app.peering.preflight import (
    ChecksFailed,
    Evaluation,
    PeeringDraft,
    draft_of,
    peering_request_evaluate,
    record_planned_routes,
)
from requests_app.peering.saga.lease import queued

logger = logging.getLogger(__name__)


def _evaluate_for_the_record(
    draft: PeeringDraft,
    department_ids: set[int],
    *,
    record_for: int | None,
    reader: User,
    viewer: User | None,
    exclude_request: uuid.UUID | None = None,
) -> Evaluation:
    """The checks to store on a request, worded for its department (`record_for`), who read them later.

    `viewer` decides what may be filed (see `peering_request_evaluate`; None at approval, which
    is not the approver's own filing). A refusal stores nothing and is read by `reader` alone, so
    it is answered in their words (an approver sees the spokes that asked for their hub): the
    checks run again, on the refusal path only."""
    evaluation = peering_request_evaluate(
        draft=draft,
        department_ids=department_ids,
        viewer=viewer,
        record_for=record_for,
        exclude_request=exclude_request,
    )
    if evaluation.ok:
        return evaluation
    refusal = peering_request_evaluate(
        draft=draft, department_ids=department_ids, viewer=viewer, reader=reader, exclude_request=exclude_request
    )
    # The world may have changed between the two runs; never answer a refusal with passes.
    raise ChecksFailed(refusal.results, refusal) if not refusal.ok else ChecksFailed(evaluation.results, evaluation)


def peering_request_submit(*, actor: User, draft: PeeringDraft) -> PeeringRequest:
    clean_text(draft.justification, "justification")
    clean_line(draft.external_ref, "external_ref", max_length=text.MAX_LINE)
    evaluation = _evaluate_for_the_record(
        draft,
        permissions.department_ids(actor),
        # The request will be its requester VPC's department's (None: unknown, the checks refuse it).
        record_for=Vpc.objects.filter(vpc_id=draft.requester_vpc)
        .values_list("account__department_id", flat=True)
        .first(),
        reader=actor,
        viewer=actor,
    )
    assert evaluation.requester and evaluation.accepter
    with transaction.atomic():
        try:
            with transaction.atomic():
                request = PeeringRequest.objects.create(
                    requester_vpc=evaluation.requester,
                    accepter_vpc=evaluation.accepter,
                    pair_key=PeeringRequest.make_pair_key(draft.requester_vpc, draft.accepter_vpc),
                    requester_route_tables=evaluation.requester_route_tables,
                    accepter_route_tables=evaluation.accepter_route_tables,
                    requester_destination_cidrs=evaluation.requester_destination_cidrs,
                    accepter_destination_cidrs=evaluation.accepter_destination_cidrs,
                    allow_dns_resolution=draft.allow_dns_resolution,
                    justification=draft.justification,
                    external_ref=draft.external_ref,
                    requested_by=actor,
                    department=evaluation.requester.account.department,
                    checks=evaluation.checks,
                    plan=evaluation.operations,
                )
                assert evaluation.plan is not None
                record_planned_routes(request, evaluation.plan)
        except IntegrityError:
            # Another request for this pair committed between our check and our insert.
            raise ChecksFailed(
                peering_request_evaluate(
                    draft=draft, department_ids=permissions.department_ids(actor), viewer=actor
                ).results
            ) from None
        audit.record(
            action=AuditAction.REQUEST_SUBMITTED,
            actor=actor,
            request=request,
            to_status=Status.PENDING_APPROVAL,
            message=draft.justification,
            data={"external_ref": draft.external_ref, "checks": evaluation.checks},
        )
        news.request_filed(request)
    return request


def peering_request_approve(*, actor: User, request_id: uuid.UUID | str, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_decide(actor, request), self_check=request.requested_by_id == actor.pk)
        require_action(Action.APPROVE, request)
        comment = clean_text(comment, "comment")
        lock_vpcs(request)
        # The world may have changed since filing; approve only what can still work.
        evaluation = _evaluate_for_the_record(
            draft_of(request),
            {request.department_id},
            record_for=request.department_id,
            reader=actor,
            viewer=None,
            exclude_request=request.pk,
        )
        request = request_transition(
            request,
            Status.APPROVED,
            actor=actor,
            action=AuditAction.REQUEST_APPROVED,
            message=comment,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_comment=comment,
            checks=evaluation.checks,
            **queued(),
        )
        outbox.enqueue_on_commit(outbox.PROVISION, str(request.pk))
    return request


def peering_request_reject(*, actor: User, request_id: uuid.UUID | str, comment: str) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_decide(actor, request), self_check=request.requested_by_id == actor.pk)
        require_action(Action.REJECT, request)
        comment = clean_text(comment, "comment")
        if not comment.strip():
            raise PortalError("comment_required", "Say why the request is rejected.", attr="comment")
        return request_transition(
            request,
            Status.REJECTED,
            actor=actor,
            action=AuditAction.REQUEST_REJECTED,
            message=comment,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_comment=comment,
        )


def peering_request_cancel(*, actor: User, request_id: uuid.UUID | str, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_cancel(actor, request))
        require_action(Action.CANCEL, request)
        comment = clean_text(comment, "comment")
        return request_transition(
            request, Status.CANCELLED, actor=actor, action=AuditAction.REQUEST_CANCELLED, message=comment
        )


def peering_request_retry(*, actor: User, request_id: uuid.UUID | str) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_operate(actor, request))
        require_action(Action.RETRY, request)
        target = Status.DECOMMISSIONING if request.failed_operation == "decommission" else Status.APPROVED
        request = request_transition(
            request,
            target,
            actor=actor,
            action=AuditAction.REQUEST_RETRIED,
            message=request.failure_reason,
            failure_reason="",
            failed_operation="",
            **queued(),
        )
        outbox.enqueue_on_commit(
            outbox.DECOMMISSION if target == Status.DECOMMISSIONING else outbox.PROVISION, str(request.pk)
        )
    return request


def peering_request_decommission(*, actor: User, request_id: uuid.UUID | str, comment: str = "") -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_operate(actor, request))
        require_action(Action.DECOMMISSION, request)
        comment = clean_text(comment, "comment")
        request = request_transition(
            request,
            Status.DECOMMISSIONING,
            actor=actor,
            action=AuditAction.REQUEST_DECOMMISSION_REQUESTED,
            message=comment,
            **queued(),
        )
        outbox.enqueue_on_commit(outbox.DECOMMISSION, str(request.pk))
    return request


def peering_request_repair(*, actor: User, request_id: uuid.UUID | str) -> PeeringRequest:
    with transaction.atomic():
        request = get_visible_request(actor, request_id)
        require(permissions.why_not_repair(actor, request))
        require_action(Action.REPAIR, request)
        audit.record(
            action=AuditAction.REQUEST_REPAIR_REQUESTED, actor=actor, request=request, data={"drift": request.drift}
        )
        outbox.enqueue_on_commit(outbox.REPAIR, str(request.pk))
    return request
