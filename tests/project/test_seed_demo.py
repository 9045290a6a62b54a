"""`manage.py seed_demo` (run by `make run`): a living world, made through the real flow, the same twice."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from requests_app import audit
from requests_app.models import AuditEvent, PeeringRequest
from requests_app.peering import selectors as peering_selectors
from tests.fixtures.sandbox import sandbox_snapshot

# The history runs the saga in this process (a heartbeat thread with its own connection beside
# it), so the test commits as make run's seed_demo does.
pytestmark = pytest.mark.django_db(transaction=True)


def _world() -> dict[str, Any]:
    return {
        "requests": sorted(
            (
                r.external_ref,
                r.requester_vpc.name,
                r.accepter_vpc.name,
                r.status,
                bool(r.drift),
                r.aws_peering_connection_id,
            )
            for r in PeeringRequest.objects.select_related("requester_vpc", "accepter_vpc")
        ),
        "events": AuditEvent.objects.count(),
        "aws": sandbox_snapshot(),
    }


def test_seed_demo_plays_a_history_that_verifies_and_a_second_run_changes_nothing(sandbox: str) -> None:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    first = _world()
    call_command("seed_demo", stdout=io.StringIO())
    assert _world() == first  # nothing added or changed, in the portal or in AWS

    by_ticket = {r.external_ref: r for r in PeeringRequest.objects.select_related("requester_vpc", "accepter_vpc")}
    assert {t: r.status for t, r in by_ticket.items()} == {
        "DEMO-101": "active",
        "DEMO-102": "active",
        "DEMO-103": "active",
        "DEMO-104": "rejected",
        "DEMO-105": "failed",
        "DEMO-106": "pending_approval",
    }
    active = [r for r in by_ticket.values() if r.status == "active"]
    assert {r.accepter_vpc.region for r in active} == {"us-east-1", "eu-west-1"}  # both regions
    assert len({r.requester_vpc.account_id for r in active}) == 3  # three accounts peer with the hubs
    for request in active:  # made in AWS, really
        assert first["aws"]["peerings"][request.aws_peering_connection_id] == "active"
    drifted = by_ticket["DEMO-103"]
    assert [f["kind"] for f in drifted.drift["findings"]] == ["route_missing"]
    assert drifted.events.filter(action="drift.found", actor_label="reconciler").count() == 1
    failed = by_ticket["DEMO-105"]
    assert "already routes 10.0.128.0/20 to igw-" in failed.failure_reason
    assert "the portal never overwrites a route it did not make" in failed.failure_reason
    assert "The portal removed its 1 route(s)" in failed.failure_reason  # and cleaned up after itself
    nina = get_user_model().objects.get(username="nina")
    assert list(peering_selectors.approval_queue_for(nina)) == [by_ticket["DEMO-106"]]
    assert by_ticket["DEMO-104"].decided_by == nina and by_ticket["DEMO-104"].decision_comment

    report = audit.verify_chain()
    assert report.ok, report.reason
    assert report.checked == first["events"] > 0
    assert "history: DEMO-105 eng-sandbox → services-euw1: failed" in out.getvalue()
