"""Named API tokens, stored hashed.

A key is `pp_` and 43 random URL-safe characters; the database keeps its SHA-256 (a key this
random needs no slow hash) and its first characters, to tell tokens apart in lists. Keys may
expire, can be revoked, and may be read-only; the last use is recorded (at most once a minute,
so a busy integration does not write on every call).

The portal makes tokens with `rotate`, under two rules: a user holds at most one live token per
name (a new one replaces the old, so a client that logs in on every run does not pile up keys),
and at most API_TOKENS_PER_USER live tokens in all. `issue` is the bare step underneath. A new
password ends every live token of its user (`note_new_password` and `end_with_password`,
connected in apps.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from requests_app import audit
from requests_app.audit.actions import AuditAction
from requests_app.models import ApiToken

KEY_PREFIX = "pp_"
LAST_USED_RESOLUTION = timedelta(seconds=60)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class TokenLimitReached(Exception):
    """The user already holds API_TOKENS_PER_USER live tokens (none of them under the new name)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"You already hold {limit} live API tokens, the most allowed. Revoke one you no longer use, "
            "or reuse its name: a new token replaces your live token of the same name."
        )


class CallerEnded(Exception):
    """The caller's credentials ended while their call ran: the password changed, or the token
    asking was revoked, after they were checked. A new token would outlive them."""


@dataclass(frozen=True)
class Rotation:
    token: ApiToken
    key: str  # the plaintext key: returned here and never again
    replaced: list[ApiToken]  # the user's tokens of the same name that were live, now revoked


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def live(user: User, now: datetime | None = None) -> QuerySet[ApiToken]:
    """The user's tokens that still authenticate: not revoked, not expired."""
    now = now or timezone.now()
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def issue(
    user: User, name: str, *, read_only: bool = False, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext key is returned here and never again.

    The bare step, with neither rule: the portal's callers go through `rotate` (test fixtures use
    this to hold several keys of one name at once)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:10], key_hash=hash_key(key), read_only=read_only, expires_at=expires_at
    )
    return token, key


def rotate(
    user: User,
    name: str,
    *,
    read_only: bool = False,
    expires_at: datetime | None = None,
    via: ApiToken | None = None,
) -> Rotation:
    """Issue the user's token called `name`, revoking their live one of that name if any.

    Refused with TokenLimitReached when the user would hold more than API_TOKENS_PER_USER live
    tokens; a replacement never needs room, as it revokes the token it replaces. Refused with
    CallerEnded when `user` (as loaded when the caller was checked) no longer has the password
    the database holds, or the token `via` which they asked is no longer live. Run it in the
    caller's transaction, so the audit of what was replaced commits or rolls back with it.
    """
    with transaction.atomic():
        # Lock the user's row: two concurrent calls would otherwise both see room under the cap,
        # or both find no token to replace (PostgreSQL; SQLite serialises writers anyway). A new
        # password takes the same lock before it ends the user's tokens (`end_with_password`).
        current = get_user_model().objects.select_for_update().only("pk", "password").get(pk=user.pk)
        now = timezone.now()
        if current.password != user.password or (via is not None and not live(user, now).filter(pk=via.pk).exists()):
            raise CallerEnded()
        replaced = list(live(user, now).filter(name=name))
        if replaced:
            ApiToken.objects.filter(pk__in=[t.pk for t in replaced]).update(revoked_at=now)
            for old in replaced:
                old.revoked_at = now
        limit = settings.API_TOKENS_PER_USER
        if live(user, now).count() >= limit:
            raise TokenLimitReached(limit)
        token, key = issue(user, name, read_only=read_only, expires_at=expires_at)
    return Rotation(token=token, key=key, replaced=replaced)


ENDS_TOKENS = "_portal_password_ends_tokens"


def note_new_password(
    sender: type[User], instance: User, raw: bool = False, update_fields: frozenset[str] | None = None, **_: object
) -> None:
    """`pre_save` of a user: mark a save that sets a new password, for `end_with_password`.

    Whoever sets it (the password change or reset pages, the admin, `manage.py changepassword`,
    code), a new password is how a person takes their account back, so a token someone else may
    hold must not outlive it, as their other sessions do not. The same password saved again
    changes nothing: set_password() with the old password, or Django re-hashing it at a login
    (its `check_password` sets the new hash, forgets the password and saves only that field).
    """
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is None or old == instance.password:
        return
    new_raw = getattr(instance, "_password", None)  # set by set_password() until the save completes
    if new_raw is not None and check_password(new_raw, old):
        return
    if new_raw is None and update_fields == frozenset({"password"}):
        return  # the re-hash at a login; a hash assigned by hand is saved with the whole row
    setattr(instance, ENDS_TOKENS, True)


def end_with_password(sender: type[User], instance: User, **_: object) -> None:
    """`post_save` of a user: after a new password is written, end every live token of theirs.

    After, not before: `rotate` compares the password its caller was checked with against the
    database under the same row lock, so a token minted while the password changes is either
    ended here or refused there.
    """
    if not getattr(instance, ENDS_TOKENS, False):
        return
    delattr(instance, ENDS_TOKENS)
    now = timezone.now()
    # Its own transaction (joined if the save runs in one): `manage.py changepassword` and the
    # password pages save outside any, and row locks need one.
    with transaction.atomic():
        sender.objects.select_for_update().only("pk").get(pk=instance.pk)
        for token in live(instance, now).select_for_update():
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            audit.record(
                action=AuditAction.TOKEN_REVOKED,
                actor_label="password change",
                data={
                    "token": token.pk,
                    "name": token.name,
                    "prefix": token.prefix,
                    "owner": instance.get_username(),
                    "reason": "the owner's password changed",
                },
            )


def default_expiry() -> datetime | None:
    days = settings.API_TOKEN_DEFAULT_TTL_DAYS
    return timezone.now() + timedelta(days=days) if days else None


class HashedTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>` (or `Bearer <key>`), checked against the stored hash."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
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

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class HashedTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes `HashedTokenAuthentication`."""

    target_class = "requests_app.integrations.tokens.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` (or `Bearer <key>`); get a key from POST /api/v1/auth/token/ "
            "or /api/v1/tokens/.",
        }
