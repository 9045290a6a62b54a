"""Idempotency-Key for POSTs: the same key and body within 24 h replays the first answer.

The key is claimed in its own committed row before the work runs, so two concurrent calls with
one key cannot both act: the second sees the claim and answers 409 until the first finishes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import caller
from requests_app.api.errors import error_body
from requests_app.models import IdempotencyRecord

TTL = timedelta(hours=24)
HEADER = "Idempotency-Key"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str) if request.data else ""
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _refusal(code: str, detail: str, status: int) -> Response:
    return Response(error_body("client_error", [{"code": code, "detail": detail, "attr": HEADER}]), status=status)


# Shown once, in the answer that creates them (a token's key, a webhook's secret): never stored,
# so a replay says where it went instead of showing it again.
SHOWN_ONCE = ("token", "secret")


def _without_secrets(body: Any) -> Any:
    if isinstance(body, dict) and any(key in body for key in SHOWN_ONCE):
        return {
            **body,
            **{key: "(shown once, in the first answer; not stored)" for key in SHOWN_ONCE if key in body},
        }
    return body


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(view)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER, "").strip()
        if not key:
            return view(self, request, *args, **kwargs)
        if len(key) > 255:
            return _refusal("invalid_idempotency_key", "An Idempotency-Key is at most 255 characters.", 400)
        fingerprint = _fingerprint(request)
        scope = f"{request.method} {request.path}"
        user = caller(request)  # behind the view's permission check: signed in
        IdempotencyRecord.objects.filter(user=user, key=key, created_at__lt=timezone.now() - TTL).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(user=user, key=key, scope=scope, body_hash=fingerprint)
        except IntegrityError:
            existing = IdempotencyRecord.objects.get(user=user, key=key)
            if existing.body_hash != fingerprint or existing.scope != scope:
                return _refusal(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request; use a new key.",
                    422,
                )
            if existing.response_status is None:
                return _refusal(
                    "idempotency_key_in_progress", "A request with this Idempotency-Key is still running.", 409
                )
            replay = Response(existing.response_body, status=existing.response_status)
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = view(self, request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        if response.status_code >= 500:
            record.delete()  # let the caller try again with the same key
        else:
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                response_status=response.status_code, response_body=_without_secrets(response.data)
            )
        return response

    return wrapper
