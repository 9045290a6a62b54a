"""Append audit events to a keyed hash chain, anchor its head outside the database, and verify both.

The threat is someone with write access to the database: raw SQL, a stolen database credential,
or the table owner who disables the append-only trigger. Such a person can rewrite every row and
the chain head, so neither can vouch for itself:

- Each event's hash is HMAC-SHA256 over a canonical JSON of its fields and the previous event's
  hash, keyed with the chain key (`chain_key`), which the database does not hold. Editing,
  deleting or reordering an event breaks every link after it, and recomputing the hashes needs
  the key. Events written before keyed hashing (`keyed` False) keep their plain SHA-256.
- Recomputing needs the key, but deleting does not: removing every event and resetting the head
  leaves a chain that links perfectly. An anchor (`anchor`) is a signed statement "event N has
  hash H and is the C-th event", published where the database cannot reach (a log line, a file,
  webhook receivers). Verification holds the chain to every valid anchor it can find.

Appends lock the single chain-head row, which gives the chain one order even with many writers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from requests_app.audit.actions import AuditAction
from requests_app.models import AuditAnchor, AuditChainHead, AuditEvent, PeeringRequest

GENESIS = "0" * 64


ANCHOR_VERSION = 1


# The label the default chain key is derived under; "v1" leaves room for another derivation.
KEY_DERIVATION_LABEL = b"peering-portal audit chain v1"


logger = logging.getLogger(__name__)


# Its own logger, so a log pipeline can ship anchors somewhere the database cannot reach.
anchor_logger = logging.getLogger("requests_app.audit.anchor")


# --- the key ------------------------------------------------------------------------------------
def derive_chain_key(secret_key: str) -> bytes:
    """The chain key when AUDIT_CHAIN_KEY is unset: HMAC-SHA256(SECRET_KEY, label), as hex text.

    Hex rather than the raw digest, so that a derived key can be handed to an auditor as text
    (an environment variable) exactly like a configured one.
    """
    return hmac.new(secret_key.encode(), KEY_DERIVATION_LABEL, hashlib.sha256).hexdigest().encode()


def chain_key() -> bytes:
    """The key new events and anchors are signed with: AUDIT_CHAIN_KEY's UTF-8 bytes, or one derived from SECRET_KEY."""
    configured: str = getattr(settings, "AUDIT_CHAIN_KEY", "") or ""
    return configured.encode() if configured else derive_chain_key(settings.SECRET_KEY)


def chain_keys() -> list[bytes]:
    """Every key events may be signed with, oldest first: AUDIT_CHAIN_KEYS_PREVIOUS, then the current key.

    The order matters: a chain may move to a newer key, never back to an older one (a leaked old
    key must not sign events after the rotation).
    """
    previous: str | Sequence[str] = getattr(settings, "AUDIT_CHAIN_KEYS_PREVIOUS", ()) or ()
    if isinstance(previous, str):
        previous = previous.split(",")
    current = chain_key()
    older = [key.strip().encode() for key in previous if key.strip()]
    return [key for key in older if key != current] + [current]


# --- what an event's hash covers ----------------------------------------------------------------
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
    "keyed",  # present only in keyed events' payloads: a legacy payload is exactly what it always was
)


def canonical_fields(event: AuditEvent) -> dict[str, Any]:
    """The fields an event's hash covers (with `prev_hash`), as JSON-ready values."""
    fields: dict[str, Any] = {
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
    if event.keyed:
        # Inside the keyed payload, so an export row says itself which check applies and a keyed
        # payload can never be read as a legacy one. Legacy rows must not have it: their stored
        # SHA-256 covers the payload without it.
        fields["keyed"] = True
    return fields


def _canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def canonical_payload(event: AuditEvent) -> str:
    return _canonical_json(canonical_fields(event)).decode()


def compute_hash(event: AuditEvent, key: bytes | None = None) -> str:
    """A keyed event's HMAC-SHA256 with `key` (default: the current chain key); a legacy event's SHA-256."""
    payload = canonical_payload(event).encode()
    if not event.keyed:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key if key is not None else chain_key(), payload, hashlib.sha256).hexdigest()


def _signing_key_index(event: AuditEvent, keys: Sequence[bytes], oldest: int = 0) -> int | None:
    """The index in `keys` of the key that signed this keyed event (newest tried first), none older than `oldest`."""
    payload = canonical_payload(event).encode()
    for index in range(len(keys) - 1, oldest - 1, -1):
        if hmac.compare_digest(hmac.new(keys[index], payload, hashlib.sha256).hexdigest(), event.hash):
            return index
    return None


# --- appending ----------------------------------------------------------------------------------
def record(
    *,
    action: AuditAction,
    actor: User | None = None,
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
    data: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction that makes the change it records."""
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            request=request,
            actor=actor if actor is not None and actor.pk else None,
            actor_label=actor_label or (actor.username if actor is not None else "") or "system",
            action=str(action),  # stored as the plain string it stands for
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
            keyed=True,
        )
        event.hash = compute_hash(event)
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash)
    return event


# --- anchors ------------------------------------------------------------------------------------
class AnchorDict(TypedDict):
    """An anchor as published (JSON): the signature is HMAC-SHA256 over the canonical JSON of the rest."""

    version: int
    last_event_id: int | None
    head_hash: str
    count: int
    at: str
    signature: str


@dataclass(frozen=True)
class Anchor:
    """A published anchor whose signature verified, and where it was found."""

    last_event_id: int | None
    head_hash: str
    count: int
    at: str
    signed_at: datetime
    signature: str
    source: str

    @property
    def rank(self) -> tuple[int, datetime]:
        # "Newest" is the one covering the most events: an anchor an auditor got with a filtered
        # export can be signed later than the chain's own anchors yet cover fewer events.
        return (self.count, self.signed_at)


class AnchorRefused(Exception):
    """The chain does not match what was anchored or does not verify: the portal will not sign it."""


def _anchor_body(*, last_event_id: int | None, head_hash: str, count: int, at: str) -> dict[str, Any]:
    return {"version": ANCHOR_VERSION, "last_event_id": last_event_id, "head_hash": head_hash, "count": count, "at": at}


def sign_anchor(*, last_event_id: int | None, head_hash: str, count: int, at: str | None = None) -> AnchorDict:
    """A signed anchor: "event `last_event_id` has hash `head_hash` and is the `count`-th event", as of `at`."""
    body = _anchor_body(
        last_event_id=last_event_id, head_hash=head_hash, count=count, at=at or timezone.now().isoformat()
    )
    signature = hmac.new(chain_key(), _canonical_json(body), hashlib.sha256).hexdigest()
    return AnchorDict(
        version=ANCHOR_VERSION,
        last_event_id=last_event_id,
        head_hash=head_hash,
        count=count,
        at=body["at"],
        signature=signature,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def read_anchor(candidate: object, source: str, keys: Sequence[bytes]) -> Anchor:
    """Check one published anchor (or an export's `{"anchor": {...}}` line); ValueError says why it is not one."""
    if isinstance(candidate, Mapping) and "anchor" in candidate and "signature" not in candidate:
        candidate = candidate["anchor"]
    if not isinstance(candidate, Mapping):
        raise ValueError("not a JSON object")
    expected = {"version", "last_event_id", "head_hash", "count", "at", "signature"}
    if set(candidate) != expected:
        raise ValueError(f"fields {sorted(set(candidate) ^ expected)} are wrong")
    last_event_id, count, at = candidate["last_event_id"], candidate["count"], candidate["at"]
    if candidate["version"] != ANCHOR_VERSION:
        raise ValueError(f"version {candidate['version']!r} is unknown")
    if not (_is_int(count) and count >= 0):
        raise ValueError("count is not a whole number")
    # An anchor of an empty chain names no event; any other names its last one.
    if not (last_event_id is None if count == 0 else _is_int(last_event_id)):
        raise ValueError("last_event_id does not fit count")
    if not _is_hash(candidate["head_hash"]) or not isinstance(candidate["signature"], str):
        raise ValueError("head_hash or signature is not a hash")
    try:
        signed_at = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        signed_at = None
    if signed_at is None or signed_at.tzinfo is None:
        raise ValueError("at is not a time with its zone")
    body = _canonical_json({k: v for k, v in candidate.items() if k != "signature"})
    if not any(
        hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), candidate["signature"]) for key in keys
    ):
        raise ValueError("its signature does not verify: forged, altered, or signed with an unknown key")
    return Anchor(last_event_id, candidate["head_hash"], count, at, signed_at, candidate["signature"], source)


def anchor_file() -> Path:
    """The JSON Lines file anchors are appended to (AUDIT_ANCHOR_FILE; by default under VAR_DIR)."""
    configured: str | os.PathLike[str] = getattr(settings, "AUDIT_ANCHOR_FILE", "") or ""
    return Path(configured) if configured else Path(settings.VAR_DIR) / "audit-anchors.jsonl"


@dataclass(frozen=True)
class KnownAnchors:
    valid: tuple[Anchor, ...]
    forged: tuple[str, ...]  # one line per anchor ignored, naming where it was and why

    @property
    def newest(self) -> Anchor | None:
        return max(self.valid, key=lambda a: a.rank, default=None)


def known_anchors(extra: Iterable[Mapping[str, object]] = ()) -> KnownAnchors:
    """Every anchor within reach (the file, the database, and `extra`), checked; copies of one count once."""
    candidates: list[tuple[object, str]] = []
    path = anchor_file()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                parsed: object = json.loads(line)
            except ValueError:
                parsed = line  # reported, in its place, as not an anchor
            candidates.append((parsed, f"{path}:{number}"))
    for row in AuditAnchor.objects.order_by("id"):
        stored = _anchor_body(last_event_id=row.last_event_id, head_hash=row.head_hash, count=row.count, at=row.at)
        candidates.append(({**stored, "version": row.version, "signature": row.signature}, f"database anchor {row.pk}"))
    candidates += [(anchor, f"given anchor {number}") for number, anchor in enumerate(extra, 1)]

    keys = chain_keys()
    valid: dict[str, Anchor] = {}
    forged: list[str] = []
    for candidate, source in candidates:
        try:
            anchor = read_anchor(candidate, source, keys)
        except ValueError as problem:
            forged.append(f"{source}: {problem}")
        else:
            valid.setdefault(anchor.signature, anchor)
    return KnownAnchors(tuple(valid.values()), tuple(forged))


def publish_anchor(anchor: AnchorDict) -> None:
    """Put a copy where the database cannot reach: the anchor log line and the anchor file."""
    line = json.dumps(anchor, sort_keys=True)
    anchor_logger.info("%s", line)
    path = anchor_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())  # an anchor is only worth something once it is on disk


def anchor_payload(anchor: AnchorDict) -> AnchorDict:
    """The data of an `audit.anchored` webhook: the anchor itself, so a receiver keeps a copy
    that `manage.py verify_audit --anchor` accepts as it is."""
    return anchor.copy()


# --- walking the chain --------------------------------------------------------------------------
class _Walk:
    """A walk along the chain, oldest first: what the next event must link to, and which keys may have signed it."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = keys
        self.previous = GENESIS
        self.checked = 0
        self.last_id: int | None = None
        self.legacy = 0
        self.key_index = 0  # a later event may be signed by a newer key, never by an older one
        self.keyed_seen = False

    def resume_after(self, event: AuditEvent) -> str:
        """Continue from an anchored event, which must itself verify; the reason if it does not."""
        self.previous, self.last_id = event.hash, event.id
        if not event.keyed:
            return ""
        index = _signing_key_index(event, self.keys)
        if index is None:
            return (
                f"event {event.id} does not verify with any chain key"
                " (was AUDIT_CHAIN_KEY changed without listing the old one in AUDIT_CHAIN_KEYS_PREVIOUS?)"
            )
        self.key_index, self.keyed_seen = index, True
        return ""

    def step(self, event: AuditEvent) -> str:
        """Check the next event: empty if it verifies, else why not."""
        self.checked += 1
        if event.prev_hash != self.previous:
            return f"event {event.id} does not follow the event before it (one was deleted or reordered)"
        if event.keyed:
            index = _signing_key_index(event, self.keys, self.key_index)
            if index is None:
                return f"event {event.id} was altered after it was written (its keyed hash does not verify)"
            self.key_index, self.keyed_seen = index, True
        elif self.keyed_seen:
            return (
                f"event {event.id} is unkeyed but follows keyed events: a downgrade"
                " (its hash was recomputed without the key)"
            )
        elif hashlib.sha256(canonical_payload(event).encode()).hexdigest() != event.hash:
            return f"event {event.id} was altered after it was written"
        else:
            self.legacy += 1
        self.previous, self.last_id = event.hash, event.id
        return ""


def _head_hash() -> str:
    return AuditChainHead.objects.filter(pk=1).values_list("last_hash", flat=True).first() or GENESIS


HEAD_MISMATCH = "the newest events were deleted: the chain head names a later event"


def _missing(anchor: Anchor) -> str:
    return (
        f"event {anchor.last_event_id} (number {anchor.count} in the chain when the anchor of {anchor.at} was"
        " signed) no longer exists: the history was deleted or truncated"
    )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken: int | None
    reason: str = ""
    legacy: int = 0  # events hashed before keyed hashing (plain SHA-256): only anchors protect them
    anchored_at: str | None = None  # when the newest valid anchor was signed
    anchored_event: int | None = None  # the event it names
    anchored_count: int | None = None  # how many events it counted up to that one
    proven_until: int | None = None  # the newest anchored event that matched; later ones rest on the keyed chain
    anchors: int = 0  # valid anchors held against the chain
    forged: tuple[str, ...] = ()  # anchors ignored, each with where it was and why

    def as_dict(self) -> dict[str, object]:
        """The report as the API gives it (to any signed-in user: no event contents, no server paths)."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken": self.first_broken,
            "reason": self.reason,
            "legacy": self.legacy,
            "anchored_at": self.anchored_at,
            "anchored_event": self.anchored_event,
            "anchored_count": self.anchored_count,
            "proven_until": self.proven_until,
            "anchors": self.anchors,
            "forged_anchors": len(self.forged),  # a count: the descriptions name server paths
        }

    def proof(self) -> str:
        """One sentence: up to which event, and as of when, the history is proven by an anchor."""
        if self.anchored_at is None:
            return "no anchor: the history rests on the keyed chain alone (run manage.py anchor_audit)"
        if self.anchored_event is None:
            return f"the newest anchor, signed at {self.anchored_at}, covers no events"
        if self.proven_until == self.anchored_event:
            after = max(self.checked - (self.anchored_count or 0), 0)
            if not self.ok:
                tail = "what breaks comes after it"
            elif after:
                tail = f"the {after} event(s) after it rest on the keyed chain alone"
            else:
                tail = "it is the newest event"
            return (
                f"history proven up to event {self.anchored_event} ({self.anchored_count} event(s))"
                f" by the anchor signed at {self.anchored_at}; {tail}"
            )
        older = f"; an older anchor still proves it up to event {self.proven_until}" if self.proven_until else ""
        return (
            f"history was proven up to event {self.anchored_event} ({self.anchored_count} event(s))"
            f" by the anchor signed at {self.anchored_at}, and the database no longer matches it{older}"
        )


def verify_chain(anchors: Iterable[Mapping[str, object]] | None = None) -> ChainReport:
    """Walk the chain oldest first, holding it to every valid anchor; report the first thing wrong.

    `anchors` adds anchors to those in the anchor file and the database (an auditor's copy, an
    export's last line). Anchors whose signature fails are ignored and listed in `forged`.
    """
    known = known_anchors(anchors or ())
    by_event: dict[int, list[Anchor]] = {}
    for anchor in known.valid:
        if anchor.last_event_id is not None:
            by_event.setdefault(anchor.last_event_id, []).append(anchor)
    newest = known.newest
    walk = _Walk(chain_keys())
    proven: Anchor | None = None

    def report(ok: bool, first_broken: int | None, reason: str = "") -> ChainReport:
        return ChainReport(
            ok,
            walk.checked,
            first_broken,
            reason,
            legacy=walk.legacy,
            anchored_at=newest.at if newest else None,
            anchored_event=newest.last_event_id if newest else None,
            anchored_count=newest.count if newest else None,
            proven_until=proven.last_event_id if proven else None,
            anchors=len(known.valid),
            forged=known.forged,
        )

    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        problem = walk.step(event)
        if problem:
            return report(False, event.id, problem)
        for anchor in by_event.pop(event.id, []):
            if anchor.head_hash != event.hash:
                return report(
                    False,
                    event.id,
                    f"event {event.id} is not the event the anchor of {anchor.at} signed: it was rewritten",
                )
            if anchor.count != walk.checked:
                return report(
                    False,
                    event.id,
                    f"the anchor of {anchor.at} counted {anchor.count} event(s) up to event {event.id},"
                    f" the database has {walk.checked}: events before it were deleted or inserted",
                )
            if proven is None or anchor.rank > proven.rank:
                proven = anchor
    if by_event:
        return report(
            False, None, _missing(max((a for group in by_event.values() for a in group), key=lambda a: a.rank))
        )
    if _head_hash() != walk.previous:
        return report(False, None, HEAD_MISMATCH)
    return report(True, None)


def _walk_from(base: Anchor | None) -> _Walk:
    """A walk resumed at the anchored event, once it is checked to be what the anchor says."""
    walk = _Walk(chain_keys())
    if base is None or base.last_event_id is None:
        return walk
    anchored = AuditEvent.objects.filter(pk=base.last_event_id).first()
    if anchored is None:
        raise AnchorRefused(_missing(base))
    if anchored.hash != base.head_hash:
        raise AnchorRefused(f"event {anchored.id} is not the event the anchor of {base.at} signed: it was rewritten")
    walk.checked = AuditEvent.objects.filter(pk__lte=anchored.pk).count()
    if walk.checked != base.count:
        raise AnchorRefused(
            f"the anchor of {base.at} counted {base.count} event(s) up to event {anchored.id},"
            f" the database has {walk.checked}: events before it were deleted or inserted"
        )
    problem = walk.resume_after(anchored)
    if problem:
        raise AnchorRefused(problem)
    return walk


def _walk_on(walk: _Walk) -> None:
    for event in AuditEvent.objects.filter(pk__gt=walk.last_id or 0).order_by("id").iterator(chunk_size=2000):
        problem = walk.step(event)
        if problem:
            raise AnchorRefused(problem)


def anchor() -> AnchorDict:
    """Sign the chain head, keep the anchor in the database and publish it (log line, anchor file).

    Refuses (AnchorRefused) when the chain does not match the newest anchor or the events since
    it do not verify: an anchor made after the history was deleted would otherwise bless it.
    Only the events since the newest anchor are walked, so hourly anchoring stays cheap.
    """
    known = known_anchors()
    if known.forged:
        logger.warning("ignoring %d anchor(s) that do not verify: %s", len(known.forged), "; ".join(known.forged))
    walk = _walk_from(known.newest)
    # The bulk of the walk without the head lock, so appends (every state change) do not wait.
    # Appends take that lock to insert, so events commit in id order: none can appear behind the walk.
    _walk_on(walk)
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        _walk_on(walk)  # whatever was appended meanwhile; nothing more can be now
        if head.last_hash != walk.previous:
            raise AnchorRefused(HEAD_MISMATCH)
        signed = sign_anchor(last_event_id=walk.last_id, head_hash=walk.previous, count=walk.checked)
        AuditAnchor.objects.create(
            version=signed["version"],
            last_event_id=signed["last_event_id"],
            head_hash=signed["head_hash"],
            count=signed["count"],
            at=signed["at"],
            signature=signed["signature"],
        )
    publish_anchor(signed)
    return signed


def anchor_event(event: AuditEvent) -> AnchorDict:
    """Sign one event as the last of an export (not published: it is the auditor's receipt).

    The event must verify on its own: the portal does not sign a row it did not write.
    """
    if event.keyed:
        if _signing_key_index(event, chain_keys()) is None:
            raise AnchorRefused(f"event {event.id} does not verify: the portal will not sign it")
    elif (
        AuditEvent.objects.filter(pk__lt=event.pk, keyed=True).exists()
        or hashlib.sha256(canonical_payload(event).encode()).hexdigest() != event.hash
    ):
        raise AnchorRefused(f"event {event.id} does not verify: the portal will not sign it")
    count = AuditEvent.objects.filter(pk__lte=event.pk).count()
    return sign_anchor(last_event_id=event.id, head_hash=event.hash, count=count)
