"""The parts of the OpenAPI schema every operation shares: the error body and the answers any
call can get (bad input, no or bad credentials, not allowed, not found, rate-limited)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_serializer
from rest_framework import serializers


class ErrorItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: e.g. cidr_overlap, not_found, throttled.")
    detail = serializers.CharField(help_text="For people: names the rule and the conflicting object.")
    attr = serializers.CharField(allow_null=True, help_text="The field or header at fault, if any.")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A failing check",
            value={
                "type": "validation_error",
                "errors": [
                    {
                        "code": "cidr_overlap",
                        "detail": "eng-sandbox (vpc-0a1) 10.0.128.0/20 overlaps services-use1 (vpc-0b2) 10.0.0.0/16",
                        "attr": "requester_vpc",
                    }
                ],
            },
        ),
        OpenApiExample(
            "Not found (or not yours to see)",
            value={"type": "client_error", "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}]},
        ),
    ]
)
class ErrorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["validation_error", "client_error", "server_error"])
    # The field the error body has; DRF's metaclass moves declared fields off the class, so it does
    # not hide Serializer.errors at run time, but the stubs see the class attribute.
    errors = ErrorItemSerializer(many=True)  # type: ignore[assignment]
    checks = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="On a refused request: every check with its status (pass, warn, fail).",
    )


ERROR = OpenApiResponse(ErrorSerializer, description="`{type, errors: [{code, detail, attr}]}`")

_COMMON = {
    "400": "Invalid input: a field, a filter or a header (code and attr say which).",
    "401": "No credentials, or a token that is unknown, revoked or expired.",
    "403": "Authenticated but not allowed (e.g. a read-only token writing, or not an administrator).",
    "404": "No such object, or not one you may see.",
    "429": "Rate limit reached; retry after `Retry-After` seconds.",
}


def add_common_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents the answers any call can get."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _COMMON.items():
                if status == "404" and "{" not in path:
                    continue
                if status == "401" and operation.get("security") == [{}]:
                    continue
                entry = responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                )
                if status == "429":
                    entry.setdefault("headers", {})["Retry-After"] = {
                        "schema": {"type": "integer"},
                        "description": "Seconds to wait before retrying.",
                    }
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                for status, description in _IDEMPOTENCY.items():
                    responses.setdefault(
                        status, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                    )
                for status, entry in responses.items():
                    if status.startswith("2"):
                        entry.setdefault("headers", {})["Idempotent-Replayed"] = {
                            "schema": {"type": "string", "enum": ["true"]},
                            "description": "Present when this is the stored answer to an earlier call with "
                            "the same Idempotency-Key.",
                        }
    return result


_IDEMPOTENCY = {
    "409": "A call with this Idempotency-Key is still running (`idempotency_key_in_progress`), or the "
    "request's state does not allow this (`invalid_transition`).",
    "422": "This Idempotency-Key was used with a different body or path (`idempotency_key_reused`).",
}
