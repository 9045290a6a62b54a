"""Append audit events to a hash chain, and verify it.

Each event's hash covers a canonical JSON of its fields plus the previous event's hash, so
editing, deleting or reordering any row breaks every hash after it. Appends lock the single
chain-head row, which gives the chain one order even with many writers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from requests_app.models import AuditChainHead, AuditEvent, PeeringRequest

GENESIS = "0" * 64


def canonical_fields(event: AuditEvent) -> dict[str, Any]:
    """The fields an event's hash covers (with `prev_hash`), as JSON-ready values."""
    return {
        "request": str(event.request_id) if event.request_id else None,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "operation": event.operation,
        "account_id": event.account_id,
        "region": event.region,
        "result": event.result,
        "error_code": event.error_code,
        "message": event.message,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
        "prev_hash": event.prev_hash,
    }


def canonical_payload(event: AuditEvent) -> str:
    return json.dumps(canonical_fields(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# --- exports: every hashed field plus the id and hash, so an auditor can verify offline ---------
def _export_rows(events: Any) -> Iterator[dict[str, Any]]:
    for event in events.iterator(chunk_size=2000):
        yield {"id": event.id, **canonical_fields(event), "hash": event.hash}


def export_jsonl(events: Any) -> Iterator[str]:
    """One JSON object per line; drop `id` and `hash`, dump the rest canonically, SHA-256 it: `hash`."""
    for row in _export_rows(events):
        yield json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def export_csv(events: Any) -> Iterator[str]:
    """The same rows as CSV; `data` is its canonical JSON text and `request`/`actor` are blank for null."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["id", *CANONICAL_KEYS, "hash"]
    writer.writerow(header)
    for row in _export_rows(events):
        row["data"] = json.dumps(row["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        writer.writerow(["" if row[key] is None else row[key] for key in header])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


CANONICAL_KEYS = (
    "request",
    "actor",
    "actor_label",
    "action",
    "from_status",
    "to_status",
    "operation",
    "account_id",
    "region",
    "result",
    "error_code",
    "message",
    "data",
    "created_at",
    "prev_hash",
)


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_payload(event).encode()).hexdigest()


def record(
    *,
    action: str,
    actor: Any = None,
    actor_label: str | None = None,
    request: PeeringRequest | None = None,
    from_status: str = "",
    to_status: str = "",
    operation: str = "",
    account_id: str = "",
    region: str = "",
    result: str = "",
    error_code: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction that makes the change it records."""
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            request=request,
            actor=actor if getattr(actor, "pk", None) else None,
            actor_label=actor_label or getattr(actor, "username", "") or "system",
            action=action,
            from_status=from_status,
            to_status=to_status,
            operation=operation,
            account_id=account_id,
            region=region,
            result=result,
            error_code=error_code,
            message=message,
            data=data or {},
            created_at=timezone.now(),
            prev_hash=head.last_hash,
        )
        event.hash = compute_hash(event)
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken: int | None
    reason: str = ""


def verify_chain() -> ChainReport:
    """Walk the chain oldest first; report the first event whose link or own hash is wrong."""
    previous = GENESIS
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        checked += 1
        if event.prev_hash != previous:
            return ChainReport(
                False,
                checked,
                event.id,
                f"event {event.id} does not follow the event before it (one was deleted or reordered)",
            )
        if compute_hash(event) != event.hash:
            return ChainReport(False, checked, event.id, f"event {event.id} was altered after it was written")
        previous = event.hash
    head = AuditChainHead.objects.filter(pk=1).values_list("last_hash", flat=True).first() or GENESIS
    if head != previous:
        return ChainReport(False, checked, None, "the newest events were deleted: the chain head names a later event")
    return ChainReport(True, checked, None)
