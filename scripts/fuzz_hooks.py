"""Schemathesis hooks for scripts/fuzz_api.sh (loaded through SCHEMATHESIS_HOOKS).

Schemathesis learns values from the API's answers and reuses them in later requests. A GET of
/api/v1/tokens/ shows it the names of the tokens the script fuzzes with, and a POST of a token
under one of those names replaces (revokes) that token, as the API promises: the rest of the run
would then see nothing but 401s, or a later run could not load the schema. The script names its
tokens `fuzz-*`; this hook renames such a name in any request body just before it is sent, so the
fuzzer still creates tokens of every other name but never ends its own.
"""

from __future__ import annotations

from typing import Any

import schemathesis

RESERVED_PREFIX = "fuzz-"


def _harmless(value: Any) -> Any:
    # The API strips surrounding whitespace from names, so " fuzz-main" would replace it too.
    if isinstance(value, str) and value.strip().startswith(RESERVED_PREFIX):
        return "not-" + value.strip()
    if isinstance(value, list):  # a form or multipart body may repeat a field: DRF reads the last
        return [_harmless(item) for item in value]
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, dict) and "name" in case.body:
        case.body["name"] = _harmless(case.body["name"])
