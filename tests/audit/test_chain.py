"""The keyed audit chain and its anchors, against someone with write access to the database.

1. recomputing the chain with plain SHA-256 (the attack the old chain fell to) fails, and so does
   turning keyed events into unkeyed ones after a keyed one (a downgrade);
2. deleting every event and resetting the head, or truncating, fails against the last anchor,
   whether it comes from the anchor file or is given; verification says up to where and as of
   when the history was proven; the portal refuses to anchor such a chain;
3. a forged anchor is reported and ignored;
4. a database with legacy (SHA-256) events followed by keyed ones verifies, counting the legacy;
5. key rotation: old events verify with the previous key, and an old key cannot sign after a new one;
6. the CSV export neutralises formulas, through the real page; JSON Lines keeps the text.

Events are made with `audit.record` on rows made with the ORM: no AWS sandbox, no worker.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from requests_app import audit
from requests_app.models import AuditAnchor, AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db

AUDIT_TABLE = "requests_app_auditevent"
TRIGGER = "requests_app_auditevent_append_only"


@pytest.fixture(autouse=True)
def anchor_file(settings: Any, tmp_path: Path) -> Path:
    """Each test's own anchor file: anchors of another test's database would (rightly) fail its chain."""
    path = tmp_path / "audit-anchors.jsonl"
    settings.AUDIT_ANCHOR_FILE = str(path)
    return path


@contextmanager
def as_table_owner() -> Iterator[Any]:
    """A cursor for raw SQL on the audit table, as its owner could run it: past the trigger on PostgreSQL."""
    with connection.cursor() as cursor:
        postgres = connection.vendor == "postgresql"
        if postgres:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses with deferred checks pending
            cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {TRIGGER}")
        try:
            yield cursor
        finally:
            if postgres:
                cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {TRIGGER}")


def seed(django_user_model: Any, count: int = 5) -> list[AuditEvent]:
    user = django_user_model.objects.create_user(f"chain-{AuditEvent.objects.count()}", password="x-long-password-1")
    return [
        audit.record(action="chain.test", actor=user, message=f"event {i}: Zürich → ✓", data={"n": i, "text": 'é"\\'})
        for i in range(count)
    ]


def legacy_record(message: str) -> AuditEvent:
    """An event as the portal wrote it before keyed hashing: plain SHA-256, `keyed` False."""
    head, _ = AuditChainHead.objects.get_or_create(pk=1)
    event = AuditEvent(
        actor_label="legacy",
        action="chain.legacy",
        message=message,
        data={},
        created_at=timezone.now(),
        prev_hash=head.last_hash,
        keyed=False,
    )
    event.hash = hashlib.sha256(audit.canonical_payload(event).encode()).hexdigest()
    event.save()
    AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash)
    return event


def rewrite_with_sha256(stretch: list[AuditEvent], *, victim: AuditEvent, message: str, unkeyed: bool = False) -> None:
    """The old attack: change one event, then recompute the hashes of a run of events (and the head,
    if the run ends the chain) with plain SHA-256, each linked to the one before.

    `unkeyed`: also mark the run unkeyed (an attacker who knows the new format passing the rewrite
    off as legacy history).
    """
    previous = stretch[0].prev_hash
    with as_table_owner() as cursor:
        for stale in stretch:
            event = AuditEvent.objects.get(pk=stale.pk)
            if event.id == victim.id:
                event.message = message
            event.keyed = event.keyed and not unkeyed
            event.prev_hash = previous
            event.hash = hashlib.sha256(audit.canonical_payload(event).encode()).hexdigest()
            cursor.execute(
                f"UPDATE {AUDIT_TABLE} SET message = %s, prev_hash = %s, hash = %s, keyed = %s WHERE id = %s",
                [event.message, event.prev_hash, event.hash, event.keyed, event.id],
            )
            previous = event.hash
        if stretch[-1].id == AuditEvent.objects.order_by("id").last().id:
            cursor.execute("UPDATE requests_app_auditchainhead SET last_hash = %s WHERE id = 1", [previous])


def delete_events_after(keep: AuditEvent | None) -> None:
    """Delete every event after `keep` (all of them for None) and point the head at what is left."""
    with as_table_owner() as cursor:
        cursor.execute(f"DELETE FROM {AUDIT_TABLE} WHERE id > %s", [keep.id if keep else 0])
        cursor.execute(
            "UPDATE requests_app_auditchainhead SET last_hash = %s WHERE id = 1", [keep.hash if keep else audit.GENESIS]
        )


# === 1. the key ====================================================================================
def test_recomputing_the_chain_with_plain_sha256_fails(django_user_model: Any) -> None:
    events = seed(django_user_model, 5)
    assert audit.verify_chain().ok

    rewrite_with_sha256(events, victim=events[2], message="approved by nobody")
    # By the old rules the rewrite is perfect: every hash is the SHA-256 of its row, every link
    # and the head hold.
    previous = audit.GENESIS
    for event in AuditEvent.objects.order_by("id"):
        assert event.prev_hash == previous
        assert event.hash == hashlib.sha256(audit.canonical_payload(event).encode()).hexdigest()
        previous = event.hash
    assert AuditChainHead.objects.get(pk=1).last_hash == previous
    # The key is what the rewrite lacks.
    report = audit.verify_chain()
    assert (report.ok, report.first_broken, report.checked) == (False, events[0].id, 1), report
    assert "altered" in report.reason
    with pytest.raises(CommandError, match=f"event {events[0].id} was altered"):
        call_command("verify_audit")


def test_an_unkeyed_event_after_a_keyed_one_fails(django_user_model: Any) -> None:
    events = seed(django_user_model, 5)
    # Rewritten from the third event on, passed off as legacy: the first two are still keyed.
    rewrite_with_sha256(events[2:], victim=events[3], message="approved by nobody", unkeyed=True)
    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, events[2].id), report
    assert "unkeyed but follows keyed events" in report.reason and "downgrade" in report.reason


def test_an_appended_unkeyed_event_fails(django_user_model: Any) -> None:
    """Appending a plain SHA-256 event, without touching the others, is the same downgrade."""
    seed(django_user_model, 3)
    intruder = legacy_record("inserted without the key")
    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, intruder.id)
    assert "downgrade" in report.reason


def test_passing_the_whole_chain_off_as_legacy_is_caught_by_an_anchor(django_user_model: Any) -> None:
    events = seed(django_user_model, 4)
    signed = audit.anchor()
    rewrite_with_sha256(events, victim=events[1], message="approved by nobody", unkeyed=True)

    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, events[-1].id), report
    assert f"anchor of {signed['at']}" in report.reason and "rewritten" in report.reason
    # Without any anchor the chain verifies, but every event shows as legacy: why the docs say
    # to anchor right after migrating to keyed hashing.
    AuditAnchor.objects.all().delete()
    Path(audit.anchor_file()).unlink()
    unanchored = audit.verify_chain()
    assert unanchored.ok and unanchored.legacy == len(events) and unanchored.anchored_at is None


# === 2. anchors: deletion and truncation ===========================================================
def test_deleting_everything_and_resetting_the_head_fails_against_the_anchor_file(
    django_user_model: Any, anchor_file: Path
) -> None:
    events = seed(django_user_model, 5)
    signed = audit.anchor()
    assert signed["last_event_id"] == events[-1].id and signed["count"] == 5
    assert [json.loads(line) for line in anchor_file.read_text().splitlines()] == [signed]

    delete_events_after(None)
    AuditAnchor.objects.all().delete()  # the database's copy goes too: it is the attacker's to delete
    report = audit.verify_chain()
    assert (report.ok, report.checked, report.first_broken) == (False, 0, None), report
    assert f"event {events[-1].id} (number 5 in the chain" in report.reason and "no longer exists" in report.reason
    # Since when it was proven: the anchor's time and event, and nothing is proven now.
    assert (report.anchored_at, report.anchored_event, report.proven_until) == (signed["at"], events[-1].id, None)
    assert f"history was proven up to event {events[-1].id} (5 event(s)) by the anchor signed at {signed['at']}" in (
        report.proof()
    )
    with pytest.raises(CommandError, match=r"no longer exists.*history was proven up to event"):
        call_command("verify_audit")
    # And the portal will not sign the emptied chain: a new anchor would bless the deletion.
    with pytest.raises(audit.AnchorRefused, match="no longer exists"):
        audit.anchor()
    with pytest.raises(CommandError, match=r"not anchored: .*no longer exists"):
        call_command("anchor_audit")
    assert len(anchor_file.read_text().splitlines()) == 1


def test_deleting_everything_fails_against_an_anchor_given_to_verification(
    django_user_model: Any, anchor_file: Path, tmp_path: Path
) -> None:
    events = seed(django_user_model, 4)
    signed = audit.anchor()
    delete_events_after(None)
    AuditAnchor.objects.all().delete()
    anchor_file.unlink()  # every copy within the portal's reach is gone...
    assert audit.verify_chain().ok  # ...and the empty chain verifies by itself

    # ...but not against a copy kept elsewhere: a webhook receiver's, an auditor's.
    report = audit.verify_chain(anchors=[audit.anchor_payload(signed)])
    assert report.ok is False and "no longer exists" in report.reason
    assert (report.anchored_at, report.anchored_event) == (signed["at"], events[-1].id)
    with pytest.raises(CommandError, match=f"event {events[-1].id} .*no longer exists"):
        call_command("verify_audit", "--anchor", json.dumps(signed))
    kept = tmp_path / "kept-anchors.jsonl"
    kept.write_text(json.dumps(signed) + "\n")
    with pytest.raises(CommandError, match="no longer exists"):
        call_command("verify_audit", "--anchor", str(kept))


def test_truncating_fails_back_to_the_newest_anchor(django_user_model: Any) -> None:
    events = seed(django_user_model, 6)
    audit.anchor()
    newest = audit.anchor()  # the same head, signed again later: both are held to the chain
    more = seed(django_user_model, 2)

    intact = audit.verify_chain()
    assert intact.ok and intact.anchors == 2 and intact.checked == 8
    assert (intact.anchored_at, intact.anchored_event, intact.proven_until) == (
        newest["at"],
        events[-1].id,
        events[-1].id,
    )
    assert intact.proof() == (
        f"history proven up to event {events[-1].id} (6 event(s)) by the anchor signed at {newest['at']};"
        " the 2 event(s) after it rest on the keyed chain alone"
    )
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "audit chain intact: 8 event(s) verified" in out.getvalue()
    assert f"history proven up to event {events[-1].id}" in out.getvalue()

    # Dropping only what came after the newest anchor is the window the anchor interval bounds.
    delete_events_after(events[-1])
    assert audit.verify_chain().ok
    assert not AuditEvent.objects.filter(pk__in=[e.id for e in more]).exists()

    # Dropping into anchored history is caught.
    delete_events_after(events[3])
    report = audit.verify_chain()
    assert report.ok is False and f"event {events[-1].id} (number 6" in report.reason


def test_an_event_deleted_before_the_anchor_with_its_links_mended_is_counted(django_user_model: Any) -> None:
    """Deleting an unkeyed (legacy) event and relinking its successor needs no key: the count catches it."""
    first, second = legacy_record("one"), legacy_record("two")
    third = legacy_record("three")
    signed = audit.anchor()
    with as_table_owner() as cursor:
        cursor.execute(f"DELETE FROM {AUDIT_TABLE} WHERE id = %s", [first.id])
        # Relink the chain from the start: both remaining events rehashed with SHA-256...
        second.prev_hash = audit.GENESIS
        second.hash = hashlib.sha256(audit.canonical_payload(second).encode()).hexdigest()
        third.prev_hash = second.hash
        third.hash = hashlib.sha256(audit.canonical_payload(third).encode()).hexdigest()
        for event in (second, third):
            cursor.execute(
                f"UPDATE {AUDIT_TABLE} SET prev_hash = %s, hash = %s WHERE id = %s",
                [event.prev_hash, event.hash, event.id],
            )
        cursor.execute("UPDATE requests_app_auditchainhead SET last_hash = %s WHERE id = 1", [third.hash])
    report = audit.verify_chain()
    # ...so the anchored event's hash changed too.
    assert report.ok is False and f"anchor of {signed['at']}" in report.reason


def test_the_portal_refuses_to_anchor_a_rewritten_event_since_the_last_anchor(django_user_model: Any) -> None:
    seed(django_user_model, 2)
    audit.anchor()
    later = seed(django_user_model, 2)
    with as_table_owner() as cursor:
        cursor.execute(f"UPDATE {AUDIT_TABLE} SET message = 'x' WHERE id = %s", [later[0].id])
    with pytest.raises(audit.AnchorRefused, match=f"event {later[0].id} was altered"):
        audit.anchor()
    assert AuditAnchor.objects.count() == 1


# === 3. forged anchors ============================================================================
def test_a_forged_anchor_is_reported_and_ignored(django_user_model: Any, anchor_file: Path) -> None:
    events = seed(django_user_model, 3)
    signed = audit.anchor()
    # Someone claims the chain once had 40 events: without the key, the signature cannot match.
    forged = {**signed, "count": 40, "last_event_id": events[-1].id + 100}
    unsigned = {**signed, "at": timezone.now().isoformat()}
    with anchor_file.open("a") as out:
        out.write(json.dumps(forged) + "\n" + json.dumps(unsigned) + "\nnot json\n")
    AuditAnchor.objects.create(**{**forged, "signature": "0" * 64})

    report = audit.verify_chain()
    assert report.ok, report
    assert report.anchors == 1  # the real one, found in the file and the database, counts once
    assert report.forged == (
        f"{anchor_file}:2: its signature does not verify: forged, altered, or signed with an unknown key",
        f"{anchor_file}:3: its signature does not verify: forged, altered, or signed with an unknown key",
        f"{anchor_file}:4: not a JSON object",
        f"database anchor {AuditAnchor.objects.get(signature='0' * 64).pk}: its signature does not verify:"
        " forged, altered, or signed with an unknown key",
    )
    given = audit.verify_chain(anchors=[forged, {"anchor": forged}])
    assert given.ok and given.forged[-2:] == (
        "given anchor 1: its signature does not verify: forged, altered, or signed with an unknown key",
        "given anchor 2: its signature does not verify: forged, altered, or signed with an unknown key",
    )
    err = io.StringIO()
    call_command("verify_audit", "--anchor", json.dumps(forged), stdout=io.StringIO(), stderr=err)
    assert "ignored an anchor that does not verify: given anchor 1" in err.getvalue()

    # anchor() takes its base from the valid ones only.
    assert audit.anchor()["count"] == 3


# === 4. legacy events =============================================================================
def test_legacy_events_followed_by_keyed_ones_verify_and_are_counted(django_user_model: Any) -> None:
    legacy = [legacy_record(f"before keyed hashing {i}") for i in range(3)]
    keyed = seed(django_user_model, 2)
    assert [e.keyed for e in AuditEvent.objects.order_by("id")] == [False] * 3 + [True] * 2
    assert keyed[0].prev_hash == legacy[-1].hash

    report = audit.verify_chain()
    assert (report.ok, report.checked, report.legacy) == (True, 5, 3), report
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "3 legacy event(s)" in out.getvalue() and "no anchor covers them all yet" in out.getvalue()

    audit.anchor()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "3 legacy event(s)" in out.getvalue() and "no anchor covers" not in out.getvalue()

    # A legacy event rewritten with SHA-256 and its links mended up to the first keyed one still
    # fails there: the keyed event's hash covers its prev_hash.
    rewrite_with_sha256(legacy, victim=legacy[0], message="rewritten")
    assert audit.verify_chain().first_broken == keyed[0].id


# === 5. the key and its rotation ==================================================================
def test_the_default_key_is_derived_from_the_secret_key(settings: Any) -> None:
    settings.AUDIT_CHAIN_KEY = ""
    settings.SECRET_KEY = "s" * 50
    # As docs/security.md spells it out for the auditor's copy.
    assert (
        audit.chain_key() == hmac.new(b"s" * 50, b"peering-portal audit chain v1", hashlib.sha256).hexdigest().encode()
    )
    settings.AUDIT_CHAIN_KEY = "from-the-secrets-manager"
    assert audit.chain_key() == b"from-the-secrets-manager"


def test_rotation_keeps_old_events_verifiable_and_refuses_an_old_key_after_a_new_one(
    django_user_model: Any, settings: Any
) -> None:
    settings.AUDIT_CHAIN_KEY = "old-key-" + "a" * 32
    old = seed(django_user_model, 2)
    signed_old = audit.anchor()

    settings.AUDIT_CHAIN_KEY = "new-key-" + "b" * 32
    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, old[0].id)  # the old key is unknown
    assert any("signed with an unknown key" in f for f in report.forged)

    settings.AUDIT_CHAIN_KEYS_PREVIOUS = ["old-key-" + "a" * 32]
    new = seed(django_user_model, 2)
    report = audit.verify_chain()
    assert report.ok and report.checked == 4 and report.anchored_at == signed_old["at"], report

    # Someone holding the leaked old key appends an event with it after the new key's events.
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEYS_PREVIOUS = "old-key-" + "a" * 32, []
    intruder = audit.record(action="chain.intruder", actor_label="someone")
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEYS_PREVIOUS = "new-key-" + "b" * 32, "old-key-" + "a" * 32
    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, intruder.id), report
    assert new[-1].id < intruder.id


# === publishing ===================================================================================
def test_anchor_audit_signs_the_head_and_publishes_it_everywhere(
    django_user_model: Any, anchor_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="requests_app.audit.anchor")
    out = io.StringIO()
    call_command("anchor_audit", stdout=out, stderr=io.StringIO())  # an empty chain can be anchored too
    empty = json.loads(out.getvalue())
    assert (empty["count"], empty["last_event_id"], empty["head_hash"]) == (0, None, audit.GENESIS)

    events = seed(django_user_model, 3)
    out = io.StringIO()
    call_command("anchor_audit", stdout=out, stderr=io.StringIO())
    printed = json.loads(out.getvalue())
    assert set(printed) == {"version", "last_event_id", "head_hash", "count", "at", "signature"}
    assert (printed["version"], printed["last_event_id"], printed["head_hash"], printed["count"]) == (
        1,
        events[-1].id,
        events[-1].hash,
        3,
    )
    # The file, the log line and the database each hold it, byte for byte the same anchor.
    assert [json.loads(line) for line in anchor_file.read_text().splitlines()] == [empty, printed]
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "requests_app.audit.anchor"]
    assert logged == [empty, printed]
    row = AuditAnchor.objects.get(signature=printed["signature"])
    assert (row.last_event_id, row.head_hash, row.count, row.at) == (events[-1].id, events[-1].hash, 3, printed["at"])
    # The webhook's data is the anchor itself, which verification takes as it is.
    assert audit.anchor_payload(printed) == printed
    report = audit.verify_chain(anchors=[audit.anchor_payload(printed)])
    assert report.ok and report.anchors == 2 and report.proven_until == events[-1].id and report.forged == ()


# === 6. exports ===================================================================================
FORMULAS = ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tindented=1", "\rcarriage=1"]


def test_the_csv_export_neutralises_formulas_and_jsonl_keeps_the_text(django_user_model: Any) -> None:
    admin = django_user_model.objects.create_superuser("csv-admin", "csv-admin@example.com", "x-long-password-1")
    for text in FORMULAS:
        audit.record(action="request.submitted", actor=admin, message=text, data={"justification": text})
    audit.record(action="request.approved", actor_label='=HYPERLINK("http://evil")', message="fine = ok")
    web = Client()
    web.force_login(admin)

    response = web.get("/audit/export.csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [r["message"] for r in rows] == [f"'{text}" for text in FORMULAS] + ["fine = ok"]
    assert rows[-1]["actor_label"] == '\'=HYPERLINK("http://evil")'
    # `data` is JSON text: it starts with `{`, never a formula; the text inside is as written.
    assert [json.loads(r["data"]).get("justification") for r in rows[:-1]] == FORMULAS
    assert {r["keyed"] for r in rows} == {"true"}
    # No cell at all starts a formula.
    assert not [
        cell for r in csv.reader(io.StringIO(body, newline="")) for cell in r if cell.startswith(tuple("=+-@\t\r"))
    ]

    response = web.get("/audit/export.jsonl")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [line["message"] for line in lines[:-1]] == [*FORMULAS, "fine = ok"]
    assert lines[-2]["actor_label"] == '=HYPERLINK("http://evil")'
    assert set(lines[-1]) == {"anchor"} and lines[-1]["anchor"]["last_event_id"] == lines[-2]["id"]


def test_the_export_anchor_is_an_anchor_and_is_refused_for_a_row_the_portal_did_not_write(
    django_user_model: Any,
) -> None:
    events = seed(django_user_model, 4)
    lines = "".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines()
    closing = json.loads(lines[-1])
    assert closing["anchor"]["count"] == 4 and closing["anchor"]["head_hash"] == events[-1].hash
    # It holds the database to what the auditor was given.
    delete_events_after(events[1])
    assert "no longer exists" in audit.verify_chain(anchors=[closing]).reason

    # A row rewritten without the key gets no signature.
    with as_table_owner() as cursor:
        cursor.execute(f"UPDATE {AUDIT_TABLE} SET message = 'x' WHERE id = %s", [events[1].id])
    closing = json.loads("".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines()[-1])
    assert closing == {"anchor": None, "error": f"event {events[1].id} does not verify: the portal will not sign it"}
    assert "".join(audit.export_jsonl(AuditEvent.objects.none())) == ""
