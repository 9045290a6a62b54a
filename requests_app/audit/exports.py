"""Exports of the audit trail for auditors: JSON Lines (with a signed closing anchor) and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from requests_app.audit.chain import CANONICAL_KEYS, AnchorRefused, anchor_event, canonical_fields
from requests_app.models import AuditEvent

# OWASP's list for CSV injection: a spreadsheet reads a cell starting so as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- exports: every hashed field plus the id and hash, so an auditor can verify offline ---------
def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, **canonical_fields(event), "hash": event.hash}


def export_jsonl(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """One JSON object per line, then `{"anchor": {...}}` signed over the last event exported.

    Verify a line: drop `id` and `hash`, dump the rest canonically, HMAC-SHA256 it with the chain
    key (SHA-256 for a legacy line, one without `keyed`): that is `hash`. An empty export has no
    anchor line: there is nothing to vouch for.
    """
    last: AuditEvent | None = None
    for event in events.iterator(chunk_size=2000):
        yield json.dumps(_export_row(event), sort_keys=True, ensure_ascii=False, default=str) + "\n"
        last = event
    if last is not None:
        try:
            closing: dict[str, object] = {"anchor": anchor_event(last)}
        except AnchorRefused as refused:
            closing = {"anchor": None, "error": str(refused)}
        yield json.dumps(closing, sort_keys=True) + "\n"


def _csv_cell(value: object) -> str:
    """A cell's text, with a `'` before anything a spreadsheet would run as a formula (OWASP).

    The quote is not part of the value: the JSON Lines export keeps the text as written.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_csv(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The same rows as CSV, for reading: `data` is its canonical JSON text, `request`/`actor` blank for null,
    `keyed` true or false, and any cell that could run as a formula prefixed with `'`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["id", *CANONICAL_KEYS, "hash"]
    writer.writerow(header)
    for event in events.iterator(chunk_size=2000):
        row = _export_row(event)
        row["data"] = json.dumps(row["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        row["keyed"] = "true" if event.keyed else "false"
        writer.writerow([_csv_cell(row[key]) for key in header])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
