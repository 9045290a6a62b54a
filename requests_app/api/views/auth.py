"""The token exchange: a username and password for an API token."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions as drf_permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from requests_app.api.errors import error_body
from requests_app.api.schema import ERROR, ErrorSerializer
from requests_app.api.serializers.integrations import TokenRequestSerializer, TokenSerializer
from requests_app.core import logins
from requests_app.integrations import services as integration_services
from requests_app.integrations import tokens


@extend_schema(
    request=TokenRequestSerializer,
    responses={
        200: TokenSerializer,
        400: ERROR,
        401: OpenApiResponse(ErrorSerializer, description="The password changed while this call ran; sign in again."),
        409: ERROR,
    },
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
        data = TokenRequestSerializer(data=request.data)
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
        token, key = integration_services.api_token_create(
            actor=user, name=data.validated_data.get("name") or "login", expires_at=tokens.default_expiry()
        )
        return Response({"token": key, "expires_at": token.expires_at})
