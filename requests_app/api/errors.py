"""One error shape for every API answer:
`{"type": "validation_error"|"client_error"|"server_error", "errors": [{"code", "detail", "attr"}]}`.
"""

from __future__ import annotations

import logging
from typing import Any, NotRequired, TypedDict

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from requests_app.core.errors import PortalError
from requests_app.domain.checks import CheckDict

logger = logging.getLogger(__name__)


class ErrorItem(TypedDict):
    code: str
    detail: str
    attr: str | None  # the field or header at fault, if any


class ErrorBody(TypedDict):
    type: str  # validation_error, client_error or server_error
    errors: list[ErrorItem]
    checks: NotRequired[list[CheckDict]]  # on a request the checks refused: every check


def _flatten(detail: Any, attr: str | None = None) -> list[ErrorItem]:
    """DRF's nested validation errors, one item per message, `attr` naming where (`routes.0.cidr`)."""
    if isinstance(detail, dict):
        errors: list[ErrorItem] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else None
            errors += _flatten(value, f"{attr}.{name}" if attr and name else (name or attr))
        return errors
    if isinstance(detail, list):
        errors = []
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                errors += _flatten(item, f"{attr}.{index}" if attr else str(index))
            else:
                errors += _flatten(item, attr)
        return errors
    code = getattr(detail, "code", None) or "error"
    return [{"code": code, "detail": str(detail), "attr": attr}]


def error_body(kind: str, errors: list[ErrorItem], *, checks: list[CheckDict] | None = None) -> ErrorBody:
    body: ErrorBody = {"type": kind, "errors": errors}
    if checks is not None:
        body["checks"] = checks
    return body


def _django_refusal(exc: Exception) -> Response | None:
    """Django's own refusals of a request it cannot take, answered as Django would (4xx), in our shape.

    A body over DATA_UPLOAD_MAX_MEMORY_SIZE (read when the idempotency key hashes it, say) is 413;
    too many form fields and other suspicious input are 400; a model's validation error is 400
    with its code. None of them is a server error.
    """
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(
                "client_error",
                [
                    {
                        "code": "request_too_large",
                        "attr": None,
                        "detail": "The request body is larger than the portal accepts.",
                    }
                ],
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(
            error_body(
                "client_error", [{"code": "bad_request", "detail": "The request could not be read.", "attr": None}]
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, DjangoValidationError):
        errors: list[ErrorItem] = [
            {
                "code": error.code or "invalid",
                "detail": " ".join(error.messages),
                "attr": None if field == "__all__" else field,
            }
            for field, field_errors in (
                exc.error_dict.items() if hasattr(exc, "error_dict") else [("__all__", exc.error_list)]
            )
            for error in field_errors
        ]
        return Response(error_body("validation_error", errors), status=status.HTTP_400_BAD_REQUEST)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PortalError):
        if exc.checks is not None:
            errors: list[ErrorItem] = [
                {"code": c["code"], "detail": c["detail"], "attr": c.get("attr")}
                for c in exc.checks
                if c["status"] == "fail"
            ]
            body = error_body("validation_error", errors, checks=exc.checks)
        else:
            kind = "validation_error" if exc.status == 400 else "client_error"
            body = error_body(kind, [{"code": exc.code, "detail": exc.detail, "attr": exc.attr}])
        return Response(body, status=exc.status)
    refusal = _django_refusal(exc)
    if refusal is not None:
        return refusal
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", [{"code": "server_error", "detail": "A server error occurred.", "attr": None}]),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("validation_error", _flatten(exc.detail))
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        if isinstance(exc, exceptions.NotFound):
            code = "not_found"
        response.data = error_body(
            "client_error" if response.status_code < 500 else "server_error",
            [{"code": code, "detail": str(exc.detail), "attr": None}],
        )
    return response
