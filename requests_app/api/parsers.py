"""Request body parsers: every body the API cannot read is a 400 (or 413) in the API's error shape.

DRF's JSON parser turns a `ValueError` into a parse error but lets `RecursionError` through, so a
deeply nested array (`[[[[...]]]]`, a few kilobytes) crashed the view with a 500: on the token
endpoint, without logging in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
