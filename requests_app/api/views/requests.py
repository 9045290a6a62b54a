"""Peering requests: filing, pre-flight, the decisions and actions, and their history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import IDEMPOTENCY_HEADER, StableOrderingFilter, caller
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.api.serializers.audit import AuditEventSerializer
from requests_app.api.serializers.requests import (
    CommentSerializer,
    PeeringRequestInputSerializer,
    PeeringRequestSerializer,
    PreflightInputSerializer,
    PreflightSerializer,
)
from requests_app.core import errors
from requests_app.models import (
    AuditEvent,
    PeeringRequest,
)
from requests_app.peering import permissions, preflight
from requests_app.peering import selectors as peering_selectors
from requests_app.peering import services as peering_services
from requests_app.peering.filters import PeeringRequestFilter


def _draft(data: dict[str, Any]) -> preflight.PeeringDraft:
    return preflight.PeeringDraft(**data)


@extend_schema_view(
    list=extend_schema(summary="Peering requests you can see, newest first"),
    retrieve=extend_schema(summary="One peering request", responses={200: PeeringRequestSerializer, 404: ERROR}),
)
class PeeringRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PeeringRequestSerializer
    filterset_class = PeeringRequestFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]
    ordering_fields = ["created_at", "updated_at", "status"]

    def get_queryset(self) -> QuerySet[PeeringRequest]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return PeeringRequest.objects.none()
        return peering_selectors.requests_for_api(caller(self.request)).order_by("-created_at", "-pk")

    def _answer(self, request_obj: PeeringRequest, code: int = 200) -> Response:
        return Response(PeeringRequestSerializer(request_obj).data, status=code)

    @extend_schema(
        summary="File a peering request",
        request=PeeringRequestInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: PeeringRequestSerializer, 400: ERROR},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = PeeringRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = peering_services.peering_request_submit(actor=caller(request), draft=_draft(data.validated_data))
        return self._answer(self.get_queryset().get(pk=created.pk), status.HTTP_201_CREATED)

    @extend_schema(
        summary="Run every check and show the plan; creates nothing",
        request=PreflightInputSerializer,
        responses={200: PreflightSerializer, 400: ERROR},
    )
    @action(detail=False, methods=["post"])
    def preflight(self, request: Request) -> Response:
        data = PreflightInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = caller(request)
        evaluation = preflight.peering_request_evaluate(
            draft=_draft(data.validated_data), department_ids=permissions.department_ids(user), viewer=user
        )
        return Response({"ok": evaluation.ok, "checks": evaluation.checks, "plan": evaluation.operations})

    def _lifecycle(
        self, request: Request, use_case: Callable[..., PeeringRequest], pk: str, *, with_comment: bool = True
    ) -> Response:
        kwargs: dict[str, Any] = {"actor": caller(request), "request_id": pk}
        if with_comment:
            data = CommentSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            kwargs["comment"] = data.validated_data["comment"]
        use_case(**kwargs)
        return self._answer(self.get_queryset().get(pk=pk))

    @extend_schema(
        summary="Approve (owners of the accepter VPC; never the requester)",
        request=CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_approve, pk)

    @extend_schema(
        summary="Reject, with a comment",
        request=CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_reject, pk)

    @extend_schema(
        summary="Cancel while pending approval (the requesting department)",
        request=CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_cancel, pk)

    @extend_schema(
        summary="Retry a failed request",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_retry, pk, with_comment=False)

    @extend_schema(
        summary="Remove the portal's routes and delete the connection",
        request=CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def decommission(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_decommission, pk)

    @extend_schema(
        summary="Recreate missing routes (owners of the accepter VPC)",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def repair(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, peering_services.peering_request_repair, pk, with_comment=False)

    @extend_schema(
        summary="The request's audit history, oldest first",
        responses={200: AuditEventSerializer(many=True), 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        if not peering_selectors.request_is_visible(caller(request), pk):
            raise errors.PortalError("not_found", "No such peering request.", status=404)
        events = AuditEvent.objects.filter(request_id=uuid.UUID(pk)).order_by("id")  # a valid id: it is visible
        page = self.paginate_queryset(events)
        if page is not None:
            return self.get_paginated_response(AuditEventSerializer(page, many=True).data)
        return Response(AuditEventSerializer(events, many=True).data)
