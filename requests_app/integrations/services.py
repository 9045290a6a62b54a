"""The integrations' use cases: webhooks (registered, changed, resent) and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, Unpack

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.core import netguard
from requests_app.core.errors import PortalError
from requests_app.core.validation import clean_line
from requests_app.domain import text
from requests_app.integrations import tokens, webhooks
from requests_app.integrations.webhooks import EVENT_TYPES, WILDCARDS, new_secret
from requests_app.models import ApiToken, Webhook, WebhookDelivery
from requests_app.peering import permissions


# --- webhooks -------------------------------------------------------------------------------
def refuse_private_destination(url: str) -> None:
    """Webhooks go to globally routable addresses only (unless WEBHOOK_ALLOW_PRIVATE): checked at
    registration and on every change here, and again, at connect time, on every attempt."""
    try:
        netguard.check_url(url)
    except netguard.DestinationRefused as exc:
        code = "invalid_url" if exc.code == "unresolvable" else exc.code
        raise PortalError(code, exc.detail, attr="url") from None


def _check_event_types(events: list[str]) -> None:

    unknown = sorted(set(events) - set(EVENT_TYPES) - set(WILDCARDS))
    if unknown:
        raise PortalError(
            "unknown_event_type",
            f"no such event type: {', '.join(unknown)}; choose from {', '.join(WILDCARDS + EVENT_TYPES)}",
            attr="events",
        )


def webhook_check(*, url: str | None = None, events: list[str] | None = None) -> None:
    """The rules a webhook's URL and events must meet, wherever it is registered or changed."""
    if events is not None:
        _check_event_types(events)
    if url is not None:
        refuse_private_destination(url)


def webhook_register(*, actor: User, url: str, events: list[str], active: bool = True) -> Webhook:

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators register webhooks.", status=403)
    webhook_check(url=url, events=events)
    with transaction.atomic():
        hook = Webhook.objects.create(url=url, events=events, active=active, created_by=actor, secret=new_secret())
        audit.record(
            action=AuditAction.WEBHOOK_REGISTERED, actor=actor, data={"url": netguard.redacted(url), "events": events}
        )
    return hook


class WebhookChanges(TypedDict, total=False):
    """What `webhook_update` may change: any of these, and nothing else."""

    url: str
    events: list[str]
    active: bool


def webhook_update(*, actor: User, webhook_id: int, **changes: Unpack[WebhookChanges]) -> Webhook:
    """Change an endpoint's URL, events or active flag (admins); the secret never changes here."""

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators change webhooks.", status=403)
    webhook_check(url=changes.get("url"), events=changes.get("events"))
    with transaction.atomic():
        hook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
        if hook is None:
            raise PortalError("not_found", "No such webhook.", status=404)
        for name, value in changes.items():
            setattr(hook, name, value)
        hook.save(update_fields=list(changes))
        shown = {**changes, **({"url": netguard.redacted(changes["url"])} if "url" in changes else {})}
        audit.record(action=AuditAction.WEBHOOK_CHANGED, actor=actor, data={"webhook": hook.pk, **shown})
    return hook


def webhook_resend(*, actor: User, webhook_id: int, message_id: str) -> WebhookDelivery:
    """Send a delivery again, with the same webhook-id (admins)."""

    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators resend webhooks.", status=403)
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_related("webhook")
            .filter(webhook_id=webhook_id, message_id=message_id)
            .first()
        )
        if delivery is None:
            raise PortalError("not_found", "No such delivery.", status=404)
        if not delivery.webhook.active:
            raise PortalError(
                "webhook_inactive", "This endpoint is switched off; switch it on before resending.", status=409
            )
        webhooks.resend(delivery)
        audit.record(
            action=AuditAction.WEBHOOK_RESENT,
            actor=actor,
            request=delivery.request,
            data={"webhook": webhook_id, "message_id": message_id, "event_type": delivery.event_type},
        )
    delivery.refresh_from_db()
    return delivery


# --- API tokens ------------------------------------------------------------------------------
def api_token_create(
    *,
    actor: User,
    name: str,
    read_only: bool = False,
    expires_at: datetime | None = None,
    via_token: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """A named token for the caller; the key is returned once and only its hash is kept.

    Asked for with a token (`via_token`), the new one expires no later than that token (and
    when that one does, if no expiry is given): a token, stolen or not, cannot outlive itself by
    minting another. Signed in with a password, the caller chooses freely.
    """

    clean_line(name, "name", max_length=text.MAX_LINE)
    if expires_at is not None and expires_at <= timezone.now():
        raise PortalError("invalid_expiry", "expires_at must be in the future.", attr="expires_at")
    if via_token is not None and via_token.expires_at is not None:
        if expires_at is None:
            expires_at = via_token.expires_at
        elif expires_at > via_token.expires_at:
            raise PortalError(
                "invalid_expiry",
                f"A token can only make tokens that expire no later than itself "
                f"({via_token.expires_at.isoformat()}); sign in with your password for a longer one.",
                attr="expires_at",
            )
    with transaction.atomic():
        try:
            issued = tokens.rotate(actor, name, read_only=read_only, expires_at=expires_at, via=via_token)
        except tokens.TokenLimitReached as exc:
            raise PortalError("token_limit_reached", str(exc), status=409) from exc
        except tokens.CallerEnded as exc:
            raise PortalError(
                "authentication_failed",
                "Your password changed or your token was revoked while this call ran; sign in again.",
                status=401,
            ) from exc
        token, key = issued.token, issued.key
        for old in issued.replaced:  # the user's live token of the same name, replaced by this one
            audit.record(
                action=AuditAction.TOKEN_REVOKED,
                actor=actor,
                data={
                    "token": old.pk,
                    "name": old.name,
                    "prefix": old.prefix,
                    "owner": actor.get_username(),
                    "replaced_by": token.pk,
                },
            )
        audit.record(
            action=AuditAction.TOKEN_CREATED,
            actor=actor,
            data={
                "token": token.pk,
                "name": name,
                "prefix": token.prefix,
                "read_only": read_only,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, key


def api_token_revoke(*, actor: User, token_id: int | str) -> ApiToken:
    """Revoke one of your tokens (administrators: anyone's). Others' tokens answer 404."""

    with transaction.atomic():
        tokens = ApiToken.objects.select_for_update()
        if not permissions.is_admin(actor):
            tokens = tokens.filter(user=actor)
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        token = tokens.filter(pk=int(token_id)).first() if str(token_id).isdecimal() else None
        if token is None:
            raise PortalError("not_found", "No such token.", status=404)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record(
                action=AuditAction.TOKEN_REVOKED,
                actor=actor,
                data={"token": token.pk, "name": token.name, "prefix": token.prefix, "owner": token.user.username},
            )
    return token
