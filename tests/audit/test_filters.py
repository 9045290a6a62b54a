"""One audit filter, one meaning: the API, the audit page and its exports answer the same rows.

`actor` and `action` match from the start, any case for the actor; the time window is half-open
(`created_after` <= t < `created_before`). The page's first parameter names (`since`, `until`)
still work.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from requests_app import audit
from requests_app.integrations import tokens
from requests_app.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(settings: Any, tmp_path: Any) -> list[AuditEvent]:
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "anchors.jsonl")
    return [
        audit.record(action="request.submitted", actor_label="fiona"),
        audit.record(action="aws.call", actor_label="worker:host-a:11:0a1b", operation="CreateRoute"),
        audit.record(action="request.approved", actor_label="Fiona-Ops"),
        audit.record(action="aws.call", actor_label="worker:host-b:12:2c3d", operation="DeleteRoute"),
        audit.record(action="request.rejected", actor_label="nina"),
    ]


def _api_ids(admin: Any, query: str) -> list[int]:
    client = APIClient()
    _, key = tokens.issue(admin, "filters")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    answer = client.get(f"/api/v1/audit-events/?{query}&limit=100")
    assert answer.status_code == 200, answer.content
    return sorted(row["id"] for row in answer.json()["results"])


def _page_ids(admin: Any, query: str) -> list[int]:
    client = Client()
    client.force_login(admin)
    html = client.get(f"/audit/?{query}").content.decode()
    return sorted(int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", html))


def _export_ids(admin: Any, query: str) -> list[int]:
    client = Client()
    client.force_login(admin)
    lines = b"".join(client.get(f"/audit/export.jsonl?{query}").streaming_content).decode().splitlines()
    return sorted(json.loads(line)["id"] for line in lines if '"anchor"' not in line)


def _everywhere(admin: Any, query: str) -> list[int]:
    api, page, export = _api_ids(admin, query), _page_ids(admin, query), _export_ids(admin, query)
    assert api == page == export, (query, api, page, export)
    return api


def test_actor_and_action_match_from_the_start_in_the_api_the_page_and_the_export(events: list[AuditEvent]) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    submitted, worker_a, approved, worker_b, rejected = (e.pk for e in events)
    assert _everywhere(admin, "actor=worker") == [worker_a, worker_b]
    assert _everywhere(admin, "actor=fiona") == [submitted, approved]  # any case, from the start
    assert _everywhere(admin, "actor=iona") == []  # not "contains"
    assert _everywhere(admin, "action=request.") == [submitted, approved, rejected]
    assert _everywhere(admin, "action=request.approved") == [approved]
    assert _everywhere(admin, "action=call") == []


def test_the_time_window_is_half_open_everywhere(events: list[AuditEvent]) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    moments = [e.created_at.isoformat() for e in events]
    ids = [e.pk for e in events]
    window = f"created_after={moments[1]}&created_before={moments[3]}".replace("+", "%2B")
    assert _everywhere(admin, window) == ids[1:3]  # the start is in, the end is out
    # Adjacent windows count every event once.
    before = f"created_before={moments[2]}".replace("+", "%2B")
    after = f"created_after={moments[2]}".replace("+", "%2B")
    assert sorted(_everywhere(admin, before) + _everywhere(admin, after)) == ids


def test_the_pages_old_since_and_until_links_still_filter(events: list[AuditEvent]) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    moments = [e.created_at.isoformat().replace("+", "%2B") for e in events]
    ids = [e.pk for e in events]
    assert _page_ids(admin, f"since={moments[1]}&until={moments[3]}") == ids[1:3]
    assert _export_ids(admin, f"since={moments[1]}") == ids[1:]


def test_an_unreadable_filter_is_a_400_in_the_api_and_matches_nothing_on_the_page(events: list[AuditEvent]) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_authenticate(admin)
    assert client.get("/api/v1/audit-events/?created_after=yesterday").status_code == 400
    assert _page_ids(admin, "created_after=yesterday") == []
    assert _page_ids(admin, "request=not-a-uuid") == []


def test_the_api_reads_since_and_until_as_the_page_does(events: list[AuditEvent]) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    moments = [e.created_at.isoformat().replace("+", "%2B") for e in events]
    ids = [e.pk for e in events]
    assert _api_ids(admin, f"since={moments[1]}&until={moments[3]}") == ids[1:3]
    assert _api_ids(admin, "since=2999-01-01T00:00:00Z") == []
    # The new names win when both are given, as on the page.
    assert _api_ids(admin, f"since=2999-01-01T00:00:00Z&created_after={moments[4]}") == ids[4:]
