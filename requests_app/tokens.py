"""Named API tokens, stored hashed.

A key is `pp_` and 43 random URL-safe characters; the database keeps its SHA-256 (a key this
random needs no slow hash) and its first characters, to tell tokens apart in lists. Keys may
expire, can be revoked, and may be read-only; the last use is recorded (at most once a minute,
so a busy integration does not write on every call).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from requests_app.models import ApiToken

KEY_PREFIX = "pp_"
LAST_USED_RESOLUTION = timedelta(seconds=60)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue(user: Any, name: str, *, read_only: bool = False, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; the plaintext key is returned here and never again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:10], key_hash=hash_key(key), read_only=read_only, expires_at=expires_at
    )
    return token, key


def default_expiry() -> datetime | None:
    days = settings.API_TOKEN_DEFAULT_TTL_DAYS
    return timezone.now() + timedelta(days=days) if days else None


class HashedTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>` (or `Bearer <key>`), checked against the stored hash."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the header as `Authorization: Token <key>`.")
        key = parts[1].decode(errors="replace")
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
        now = timezone.now()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token expired.")
        if token.read_only and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied("This token is read-only.")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return "Token"


class HashedTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes `HashedTokenAuthentication`."""

    target_class = "requests_app.tokens.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` (or `Bearer <key>`); get a key from POST /api/v1/auth/token/ "
            "or /api/v1/tokens/.",
        }
