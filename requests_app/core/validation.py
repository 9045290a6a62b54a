"""The input rules every use case applies, so every way in refuses the same input with the same words."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from requests_app.core.errors import PortalError
from requests_app.domain import text


def full_clean(obj: models.Model) -> None:
    """The model's own validation, as a refusal with a code and the field: never a server error."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.error_dict.items()))
        code = errors[0].code or "invalid"
        detail = f"{field}: {' '.join(m for e in errors for m in e.messages)}"
        if code == "unique":
            raise PortalError("already_exists", detail, status=409, attr=field) from None
        raise PortalError(code if code != "invalid" else f"invalid_{field}", detail, attr=field) from None


def clean_text(value: str, attr: str, *, max_length: int = text.MAX_TEXT) -> str:
    """Free text (comments, justifications) as every way in must take it: refused, never cut."""
    problem = text.text_problem(value, max_length=max_length)
    if problem:
        raise PortalError(f"invalid_{attr}", f"{attr.replace('_', ' ')}: {problem}", attr=attr)
    return value


def clean_line(value: str, attr: str, *, max_length: int) -> str:
    """A single-line field (a ticket reference, a name): it ends up in e-mail headers and logs."""
    problem = text.line_problem(value, max_length=max_length)
    if problem:
        raise PortalError(f"invalid_{attr}", f"{attr.replace('_', ' ')}: {problem}", attr=attr)
    return value
