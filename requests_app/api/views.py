from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework import permissions as drf_permissions
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from requests_app import audit, logins, permissions, selectors, services, tokens
from requests_app.api import serializers as s
from requests_app.api.errors import error_body
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.domain.status import Status
from requests_app.fields import UtcIsoDateTimeField
from requests_app.models import (
    ApiToken,
    AuditEvent,
    AwsAccount,
    ObservedPeering,
    PeeringRequest,
    Vpc,
    Webhook,
    WebhookDelivery,
)


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):  # type: ignore[misc]
    field_class = UtcIsoDateTimeField


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat the call safely: the same key and body within 24 h return the first response.",
)


class IsAdmin(drf_permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return permissions.is_admin(request.user)


@extend_schema(
    request=s.TokenRequestSerializer,
    responses={200: s.TokenSerializer, 400: ERROR, 409: ERROR},
    auth=[],
    summary="Exchange a username and password for an API token",
    description="The token replaces (revokes) your live token of the same `name` (default `login`), so "
    "a client that logs in on every run holds one token; use distinct names for tokens that must "
    "live side by side. 409 `token_limit_reached` past API_TOKENS_PER_USER live tokens; 429 "
    "`login_throttled` after too many failed password checks for the user name or address.",
)
class ObtainTokenView(APIView):
    """Every check here goes through the login throttle (logins.locked, then authenticate() with
    ThrottledModelBackend), and the anonymous rate limit counts per client address."""

    authentication_classes: list[Any] = []
    permission_classes = [drf_permissions.AllowAny]

    def post(self, request: Request) -> Response:
        data = s.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if logins.locked(data.validated_data["username"], request):
            response = Response(
                error_body(
                    "client_error",
                    [
                        {
                            "code": "login_throttled",
                            "attr": None,
                            "detail": "Too many failed logins for this user or address; try again later.",
                        }
                    ],
                ),
                status=429,
            )
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_SECONDS)
            return response
        credentials = {k: data.validated_data[k] for k in ("username", "password")}
        user = authenticate(request, **credentials)
        if user is None or not user.is_active:
            return Response(
                {
                    "type": "validation_error",
                    "errors": [
                        {"code": "authentication_failed", "detail": "Wrong username or password.", "attr": None}
                    ],
                },
                status=400,
            )
        token, key = services.api_token_create(
            actor=user, name=data.validated_data.get("name") or "login", expires_at=tokens.default_expiry()
        )
        return Response({"token": key, "expires_at": token.expires_at})


class VpcFilter(django_filters.FilterSet):
    department = django_filters.CharFilter(field_name="account__department__slug")
    region = django_filters.CharFilter()
    is_services_vpc = django_filters.BooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains", max_length=255)

    class Meta:
        model = Vpc
        fields = ["department", "region", "is_services_vpc", "name"]


class VpcViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.VpcSerializer
    lookup_field = "vpc_id"
    filterset_class = VpcFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.vpcs_visible_to(self.request.user)

    @extend_schema(
        summary="Headroom against each quota, counting live and pending work",
        responses={200: s.CapacitySerializer, 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def capacity(self, request: Request, vpc_id: str | None = None) -> Response:
        return Response(services.vpc_capacity(actor=request.user, vpc_id=str(vpc_id)).as_dict())


@extend_schema_view(
    list=extend_schema(summary="Peerings found in AWS that the portal does not manage"),
    retrieve=extend_schema(
        summary="One peering found in AWS", responses={200: s.ObservedPeeringSerializer, 404: ERROR}
    ),
)
class ObservedPeeringViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ObservedPeeringSerializer
    lookup_field = "connection_id"
    lookup_url_kwarg = "pcx_id"
    lookup_value_regex = r"pcx-[0-9a-zA-Z]+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return ObservedPeering.objects.none()
        return selectors.observed_peerings_visible_to(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["routes"] = getattr(self, "_routes", {})
        return context

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        self._routes = selectors.routes_to_connections([o.connection_id for o in (page or [])])
        return page

    def get_object(self) -> Any:
        found = super().get_object()
        self._routes = selectors.routes_to_connections([found.connection_id])
        return found

    @extend_schema(
        summary="Adopt it: the portal manages it from now on (owners of the hub, or an admin)",
        request=s.AdoptSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 502: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def adopt(self, request: Request, pcx_id: str | None = None) -> Response:
        data = s.AdoptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        adopted = services.observed_peering_adopt(actor=request.user, connection_id=str(pcx_id), **data.validated_data)
        found = selectors.requests_for_api(request.user).get(pk=adopted.pk)
        return Response(s.PeeringRequestSerializer(found).data, status=status.HTTP_201_CREATED)


class AwsAccountViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.AwsAccountSerializer
    permission_classes = [IsAdmin]
    lookup_field = "account_id"
    queryset = AwsAccount.objects.select_related("department")

    @extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={201: s.AwsAccountSerializer, 400: ERROR, 403: ERROR})
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        account = services.aws_account_register(
            actor=request.user,
            account_id=v["account_id"],
            name=v["name"],
            department=v["department"].slug,
            role_arn=v["role_arn"],
            regions=v["regions"],
        )
        return Response(self.get_serializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, parameters=[IDEMPOTENCY_HEADER], responses={200: s.SyncReportSerializer, 404: ERROR, 502: ERROR}
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def sync(self, request: Request, account_id: str | None = None) -> Response:
        return Response(services.aws_account_sync(actor=request.user, account_id=str(account_id)))


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with the primary key as the last key, so equal values never shuffle between pages."""

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> Any:
        ordering = super().get_ordering(request, queryset, view)
        return [*ordering, "-pk"] if ordering else ordering


class PeeringRequestFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=[(x.value, x.value) for x in Status])
    external_ref = django_filters.CharFilter()
    requester_vpc = django_filters.CharFilter(field_name="requester_vpc__vpc_id")
    accepter_vpc = django_filters.CharFilter(field_name="accepter_vpc__vpc_id")
    updated_after = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gt")

    class Meta:
        model = PeeringRequest
        fields = ["status", "external_ref", "requester_vpc", "accepter_vpc", "updated_after"]


def _draft(data: dict[str, Any]) -> services.PeeringDraft:
    return services.PeeringDraft(**data)


@extend_schema_view(
    list=extend_schema(summary="Peering requests you can see, newest first"),
    retrieve=extend_schema(summary="One peering request", responses={200: s.PeeringRequestSerializer, 404: ERROR}),
)
class PeeringRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.PeeringRequestSerializer
    filterset_class = PeeringRequestFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]
    ordering_fields = ["created_at", "updated_at", "status"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.requests_for_api(self.request.user).order_by("-created_at", "-pk")

    def _answer(self, request_obj: PeeringRequest, code: int = 200) -> Response:
        return Response(s.PeeringRequestSerializer(request_obj).data, status=code)

    @extend_schema(
        summary="File a peering request",
        request=s.PeeringRequestInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.PeeringRequestSerializer, 400: ERROR},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = s.PeeringRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.peering_request_submit(actor=request.user, draft=_draft(data.validated_data))
        return self._answer(self.get_queryset().get(pk=created.pk), status.HTTP_201_CREATED)

    @extend_schema(
        summary="Run every check and show the plan; creates nothing",
        request=s.PreflightInputSerializer,
        responses={200: s.PreflightSerializer, 400: ERROR},
    )
    @action(detail=False, methods=["post"])
    def preflight(self, request: Request) -> Response:
        data = s.PreflightInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = services.peering_request_evaluate(
            draft=_draft(data.validated_data),
            department_ids=permissions.department_ids(request.user),
            viewer=request.user,
        )
        return Response({"ok": evaluation.ok, "checks": evaluation.checks, "plan": evaluation.operations})

    def _lifecycle(self, request: Request, use_case: Any, pk: str, *, with_comment: bool = True) -> Response:
        kwargs: dict[str, Any] = {"actor": request.user, "request_id": pk}
        if with_comment:
            data = s.CommentSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            kwargs["comment"] = data.validated_data["comment"]
        use_case(**kwargs)
        return self._answer(self.get_queryset().get(pk=pk))

    @extend_schema(
        summary="Approve (owners of the accepter VPC; never the requester)",
        request=s.CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_approve, pk)

    @extend_schema(
        summary="Reject, with a comment",
        request=s.CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_reject, pk)

    @extend_schema(
        summary="Cancel while pending approval (the requesting department)",
        request=s.CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_cancel, pk)

    @extend_schema(
        summary="Retry a failed request",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_retry, pk, with_comment=False)

    @extend_schema(
        summary="Remove the portal's routes and delete the connection",
        request=s.CommentSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def decommission(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_decommission, pk)

    @extend_schema(
        summary="Recreate missing routes (owners of the accepter VPC)",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.PeeringRequestSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def repair(self, request: Request, pk: str) -> Response:
        return self._lifecycle(request, services.peering_request_repair, pk, with_comment=False)

    @extend_schema(
        summary="The request's audit history, oldest first",
        responses={200: s.AuditEventSerializer(many=True), 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        if not selectors.request_is_visible(request.user, pk):
            raise services.PortalError("not_found", "No such peering request.", status=404)
        events = AuditEvent.objects.filter(request_id=pk).order_by("id")
        page = self.paginate_queryset(events)
        if page is not None:
            return self.get_paginated_response(s.AuditEventSerializer(page, many=True).data)
        return Response(s.AuditEventSerializer(events, many=True).data)


class AuditEventFilter(django_filters.FilterSet):
    request = django_filters.UUIDFilter(field_name="request_id")
    action = django_filters.CharFilter()
    actor = django_filters.CharFilter(field_name="actor_label")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["request", "action", "actor", "created_after", "created_before"]


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.events_visible_to(self.request.user).order_by("id")

    # Open to every signed-in user, as the contract promises; it tells how many events exist and
    # where the chain breaks, never what any event says.
    @extend_schema(summary="Verify the audit hash chain", responses={200: s.ChainReportSerializer})
    @action(detail=False, methods=["get"])
    def verify(self, request: Request) -> Response:
        return Response(audit.verify_chain().as_dict())


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.WebhookSerializer
    permission_classes = [IsAdmin]
    queryset = Webhook.objects.all()

    @extend_schema(
        request=s.WebhookSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.WebhookCreatedSerializer, 400: ERROR},
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.WebhookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook = services.webhook_register(actor=request.user, **data.validated_data)
        return Response(s.WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an endpoint's URL, events or active flag",
        request=s.WebhookUpdateSerializer,
        responses={200: s.WebhookSerializer, 400: ERROR, 404: ERROR},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = s.WebhookUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook = services.webhook_update(actor=request.user, webhook_id=self.get_object().pk, **data.validated_data)
        return Response(s.WebhookSerializer(hook).data)

    @extend_schema(
        summary="The endpoint's deliveries, newest first, each with its attempts",
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=[x.value for x in WebhookDelivery.State])],
        responses={200: s.WebhookDeliverySerializer(many=True), 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        deliveries = self.get_object().deliveries.prefetch_related("attempt_log").order_by("-id")
        if request.query_params.get("state"):
            deliveries = deliveries.filter(state=request.query_params["state"])
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        summary="Send a delivery again, with the same webhook-id",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: s.WebhookDeliverySerializer, 404: ERROR},
    )
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<message_id>msg_[0-9a-f]{32})/resend")
    @idempotent
    def resend(self, request: Request, pk: str | None = None, message_id: str = "") -> Response:
        delivery = services.webhook_resend(actor=request.user, webhook_id=self.get_object().pk, message_id=message_id)
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="Your API tokens (administrators: everyone's); never their keys"),
    retrieve=extend_schema(summary="One token", responses={200: s.ApiTokenSerializer, 404: ERROR}),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ApiTokenSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = ApiToken.objects.select_related("user").order_by("-created_at", "-pk")
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        return qs if permissions.is_admin(self.request.user) else qs.filter(user=self.request.user)

    @extend_schema(
        summary="Create a named token; its key is in this answer only",
        request=s.ApiTokenSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.ApiTokenCreatedSerializer, 400: ERROR, 409: ERROR},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = s.ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = services.api_token_create(actor=request.user, **data.validated_data)
        return Response({**s.ApiTokenSerializer(token).data, "token": key}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke a token; calls with it then get 401",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.ApiTokenSerializer, 404: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.ApiTokenSerializer(services.api_token_revoke(actor=request.user, token_id=pk)).data)
