"""The audit pages: the history's filters, the CSV and JSON Lines exports (carrying the approval with
hashes that verify offline), an unknown export format, and links to older events that keep the filters."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from requests_app import audit
from requests_app.models import AuditEvent
from tests.web.pages import PageWorld, approve_as_nina, export, get, history_rows, text, verify

pytestmark = pytest.mark.django_db


def test_audit_filters(world: PageWorld, client: Any) -> None:
    approve_as_nina(client, world)
    rid, users = world.rid, world.users
    fiona = users["fiona"]

    def actions(**params: Any) -> list[str]:
        rows = history_rows(text(get(client, fiona, "/audit/", **params)))
        return [re.findall(r"request\.\w+", r)[0] for r in rows]

    assert actions() == ["request.approved", "request.submitted"]  # newest first
    assert actions(actor="nina") == ["request.approved"]
    assert actions(action="request.approved") == ["request.approved"]
    assert actions(action="request.sub") == ["request.submitted"]
    assert actions(request=rid) == ["request.approved", "request.submitted"]
    assert actions(request=str(uuid.uuid4())) == []
    assert actions(request="not-a-request-id") == []
    assert actions(since="2000-01-01 00:00", until=(timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")) == [
        "request.approved",
        "request.submitted",
    ]
    assert actions(since=(timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")) == []
    assert actions(until="2000-01-01 00:00") == []
    assert history_rows(text(get(client, users["harry"], "/audit/"))) == []


def test_exports_carry_the_approval_with_verifiable_hashes(world: PageWorld, client: Any) -> None:
    approve_as_nina(client, world)
    rid, users = world.rid, world.users
    *rows, closing = [json.loads(line) for line in export(client, users["admin"], "jsonl").splitlines()]
    # The export ends with a signed statement of what it holds (an anchor over its last event).
    assert (closing["anchor"]["last_event_id"], closing["anchor"]["head_hash"]) == (rows[-1]["id"], rows[-1]["hash"])
    assert rows and rows[0]["prev_hash"] == audit.GENESIS
    for previous, row in zip([None, *rows], rows, strict=False):
        verify(row)
        assert previous is None or row["prev_hash"] == previous["hash"]
        assert set(row) == {"id", "hash", *audit.CANONICAL_KEYS}
    approved = [r for r in rows if r["action"] == "request.approved"]
    assert len(approved) == 1
    assert (approved[0]["request"], approved[0]["actor"], approved[0]["actor_label"]) == (rid, users["nina"].pk, "nina")
    assert approved[0]["hash"] == AuditEvent.objects.get(action="request.approved").hash

    *filtered, _ = [
        json.loads(line) for line in export(client, users["fiona"], "jsonl", action="request.approved").splitlines()
    ]
    assert [r["action"] for r in filtered] == ["request.approved"]
    verify(filtered[0])

    table = list(csv.DictReader(io.StringIO(export(client, users["fiona"], "csv", request=rid))))
    assert [r["action"] for r in table] == ["request.submitted", "request.approved"]
    for r in table:  # the same check from the CSV: blanks are nulls, actor an integer, data its JSON
        row: dict[str, Any] = {
            **r,
            "request": r["request"] or None,
            "actor": int(r["actor"]) if r["actor"] else None,
            "data": json.loads(r["data"]),
            "keyed": r["keyed"] == "true",
        }
        verify(row)
    assert export(client, users["harry"], "jsonl") == ""


def test_an_unknown_export_format_is_404(world: PageWorld, client: Any) -> None:
    assert get(client, world.users["admin"], "/audit/export.xml").status_code == 404


@pytest.mark.django_db
def test_audit_page_links_to_older_events_keep_the_filters(client: Client, django_user_model: Any) -> None:

    for n in range(101):  # 100 a page
        audit.record(action="probe.event", actor_label="test", message=str(n))
    client.force_login(django_user_model.objects.create_superuser("auditor", password="x-long-password-1"))
    page = client.get("/audit/", {"action": "probe.event"}).content.decode()
    assert "page 1 of 2" in page
    assert 'href="?action=probe.event&amp;page=2"' in page
