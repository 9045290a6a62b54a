"""The request pages: who may see and act on a request (anonymous visitors, outsiders, members who
may see but not act, the approver), and what the home page, the approvals queue, the request page
and the new request form show, with a strict Content-Security-Policy on every page.

No worker runs: each test's transaction never commits, so approving enqueues nothing. The world is
the demo world from rows (`demo_rows`) with one request fiona filed (tests/web/conftest.py).
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.utils import timezone

from requests_app.models import AuditEvent, PeeringRequest
from tests.web.pages import (
    ACTIONS,
    LIST_PAGES,
    PageWorld,
    approve_as_nina,
    csp_problems,
    get,
    history_rows,
    make_request,
    messages_in,
    text,
)

pytestmark = pytest.mark.django_db


# --- access --------------------------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_log_in(world: PageWorld, client: Any) -> None:
    rid = world.rid
    gets = [*LIST_PAGES, f"/requests/{rid}/", "/audit/export.csv", "/audit/export.jsonl"]
    posts = [
        "/requests/new/check/",
        *(f"/requests/{rid}/{a}/" for a in ACTIONS),
        "/inventory/accounts/222222222222/sync/",
    ]
    for method, url in [("get", u) for u in gets] + [("post", u) for u in posts]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.url.startswith(f"{resolve_url(settings.LOGIN_URL)}?next="), url
    assert PeeringRequest.objects.get(pk=rid).status == "pending_approval"


@pytest.mark.parametrize("username", ["admin", "nina", "fiona", "sam", "harry"])
def test_every_page_renders_with_a_strict_csp(world: PageWorld, client: Any, username: str) -> None:
    """200 for each page the user may see; no inline script, no inline style, CSP sent."""
    detail, vpcs, problems = f"/requests/{world.rid}/", world.vpcs, []
    client.force_login(world.users[username])
    check = {"requester_vpc": vpcs["finance-app"].vpc_id, "accepter_vpc": vpcs["services-use1"].vpc_id}
    for url in [*LIST_PAGES, detail, "/requests/new/check/"]:
        try:  # a page that crashes must not hide the others' results
            response = client.post(url, check) if url.endswith("/check/") else client.get(url)
        except Exception as exc:
            problems.append(f"{url}: {exc.__class__.__name__}: {exc}")
            continue
        expected = 404 if (username == "harry" and url == detail) else 200
        if response.status_code != expected:
            problems.append(f"{url}: {response.status_code}, expected {expected}")
        else:
            problems += csp_problems(url, response)
    assert not problems, "\n".join(problems)


def test_outsiders_get_404_on_the_request_and_its_actions(world: PageWorld, client: Any) -> None:
    rid, harry = world.rid, world.users["harry"]
    assert get(client, harry, f"/requests/{rid}/").status_code == 404
    for action in ACTIONS:
        response = client.post(f"/requests/{rid}/{action}/", {"comment": "let me in", "next": "approvals"})
        assert response.status_code == 404, action
    assert get(client, world.users["fiona"], f"/requests/{uuid.uuid4()}/").status_code == 404
    assert client.post(f"/requests/{rid}/explode/").status_code == 404
    assert PeeringRequest.objects.get(pk=rid).status == "pending_approval"
    assert AuditEvent.objects.filter(request_id=rid).count() == 1


@pytest.mark.parametrize(
    ("username", "action", "reason"),
    [
        ("fiona", "approve", "separation of duties"),
        ("fiona", "reject", "separation of duties"),
        ("nina", "cancel", "only members of Finance can cancel"),
        ("fiona", "repair", "can repair this peering"),
        ("fiona", "retry", "only a failed request can be retried"),
    ],
)
def test_members_who_may_see_but_not_act_are_refused_with_a_message(
    world: PageWorld, client: Any, username: str, action: str, reason: str
) -> None:
    rid = world.rid
    client.force_login(world.users[username])
    response = client.post(f"/requests/{rid}/{action}/", {"comment": "trying"}, follow=True)
    assert response.redirect_chain == [(f"/requests/{rid}/", 302)]
    errors = messages_in(text(response), "error")
    assert len(errors) == 1 and errors[0].startswith(f"Could not {action}:") and reason in errors[0], errors
    stored = PeeringRequest.objects.get(pk=rid)
    assert (stored.status, stored.decided_by_id) == ("pending_approval", None)
    assert list(AuditEvent.objects.filter(request_id=rid).values_list("action", flat=True)) == ["request.submitted"]


def test_the_approver_approves_from_the_queue_and_returns_to_it(world: PageWorld, client: Any) -> None:
    rid, nina = world.rid, world.users["nina"]
    queue = text(get(client, nina, "/approvals/"))
    assert f'action="/requests/{rid}/approve/"' in queue and 'name="next" value="approvals"' in queue
    # only named pages: a URL in `next` is ignored (no open redirect), and the refusal changes nothing
    response = client.post(f"/requests/{rid}/cancel/", {"next": "https://evil.example/"})
    assert response.url == f"/requests/{rid}/"
    response = client.post(f"/requests/{rid}/approve/", {"comment": "ok", "next": "approvals"}, follow=True)
    assert response.redirect_chain == [("/approvals/", 302)]
    page = text(response)
    assert messages_in(page, "success") == ["Done: approve."]
    assert f'action="/requests/{rid}/approve/"' not in page  # left the queue
    assert "approved by nina" in page  # recently decided
    stored = PeeringRequest.objects.get(pk=rid)
    assert (stored.status, stored.decided_by, stored.decision_comment) == ("approved", nina, "ok")
    assert AuditEvent.objects.filter(request_id=rid, action="request.approved", actor=nina).count() == 1


def test_reject_requires_and_records_the_comment(world: PageWorld, client: Any) -> None:
    rid, nina = world.rid, world.users["nina"]
    client.force_login(nina)
    response = client.post(f"/requests/{rid}/reject/", {"comment": "  ", "next": "approvals"}, follow=True)
    assert response.redirect_chain == [("/approvals/", 302)]
    assert any("Say why" in m for m in messages_in(text(response), "error"))
    assert PeeringRequest.objects.get(pk=rid).status == "pending_approval"
    response = client.post(f"/requests/{rid}/reject/", {"comment": "use the eu hub instead"}, follow=True)
    assert messages_in(text(response), "success") == ["Done: reject."]
    stored = PeeringRequest.objects.get(pk=rid)
    assert (stored.status, stored.decided_by, stored.decision_comment) == ("rejected", nina, "use the eu hub instead")
    event = AuditEvent.objects.get(request_id=rid, action="request.rejected")
    assert (event.actor, event.message) == (nina, "use the eu hub instead")
    assert "use the eu hub instead" in html.unescape(text(get(client, world.users["fiona"], f"/requests/{rid}/")))


# --- content -------------------------------------------------------------------------------------
def test_home_shows_badges_ticket_tally_and_filters(world: PageWorld, client: Any) -> None:
    fiona = world.users["fiona"]
    page = text(get(client, fiona, "/"))
    assert '<span class="badge status-pending_approval">' in page
    assert "<td>CHG-4711</td>" in page
    assert re.search(r'<ul class="tally".*?class="badge status-pending_approval">[^<]*: 1</a>', page, re.S), page
    assert "CHG-4711" in text(get(client, fiona, "/", q="chg-47"))
    assert "CHG-4711" in text(get(client, fiona, "/", status="pending_approval"))
    assert "No request matches." in text(get(client, fiona, "/", status="rejected"))
    assert "No request matches." in text(get(client, fiona, "/", q="no-such-ticket"))
    assert "CHG-4711" not in text(get(client, world.users["harry"], "/"))


def test_approvals_queue_oldest_first_with_checks_overdue_and_attention(
    world: PageWorld, client: Any, api: Any
) -> None:
    vpcs, users = world.vpcs, world.users
    response = api("erin").post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": vpcs["eng-build"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "build agents need the proxy",
            "external_ref": "ENG-9",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    erin_rid = response.json()["id"]
    late = timezone.now() - timedelta(hours=settings.APPROVAL_SLA_HOURS + 1)
    PeeringRequest.objects.filter(pk=world.rid).update(created_at=late)
    hr = make_request(vpcs["hr-portal"], vpcs["services-euw1"], users["harry"])
    PeeringRequest.objects.filter(pk=hr.pk).update(status="failed", failure_reason="PeeringQuotaExceeded on hub")
    sandbox = make_request(vpcs["eng-sandbox"], vpcs["services-euw1"], users["erin"])
    PeeringRequest.objects.filter(pk=sandbox.pk).update(
        status="active",
        drift={"found_at": timezone.now().isoformat(), "findings": [{"kind": "route_missing", "detail": "route gone"}]},
    )

    page = text(get(client, users["nina"], "/approvals/"))
    queue = page.split('<table class="queue">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", queue, re.S)
    assert [("CHG-4711" in r, "ENG-9" in r) for r in rows] == [(True, False), (False, True)], "oldest first"
    assert all("checks: all pass" in r for r in rows), rows
    assert 'class="badge overdue">overdue<' in rows[0]
    assert "overdue" not in rows[1]
    attention = page.split("Needs attention", 1)[1].split("</table>", 1)[0]
    assert "PeeringQuotaExceeded on hub" in attention and str(hr.pk) in attention
    assert "route gone" in attention and 'class="badge drift"' in attention and str(sandbox.pk) in attention
    assert erin_rid not in attention
    # fiona owns no VPC: nothing waits on her, and she sees nobody else's queue
    fiona_page = text(get(client, users["fiona"], "/approvals/"))
    assert "Nothing waits on you." in fiona_page and "CHG-4711" not in fiona_page


def test_request_page_shows_timeline_history_and_actions(world: PageWorld, client: Any) -> None:
    rid, users = world.rid, world.users
    before = text(get(client, users["nina"], f"/requests/{rid}/"))
    assert f"/requests/{rid}/approve/" in before and f"/requests/{rid}/cancel/" not in before
    mine = text(get(client, users["fiona"], f"/requests/{rid}/"))
    assert f"/requests/{rid}/cancel/" in mine and f"/requests/{rid}/approve/" not in mine
    approve_as_nina(client, world)
    page = text(get(client, users["fiona"], f"/requests/{rid}/"))
    timeline = page.split('<ol class="timeline"', 1)[1].split("</ol>", 1)[0]
    items = re.findall(r'<li class="(\w+)">\s*<span class="badge status-(\w+)">.*?</li>', timeline, re.S)
    assert items == [
        ("done", "pending_approval"),
        ("current", "approved"),
        ("ahead", "provisioning"),
        ("ahead", "active"),
    ], items
    assert "· nina" in timeline and "· fiona" in timeline
    rows = history_rows(page)
    assert len(rows) == 2
    assert "fiona" in rows[0] and "request.submitted" in rows[0]
    assert "nina" in rows[1] and "request.approved: pending_approval → approved" in html.unescape(rows[1])
    assert "CHG-4711" in page and "fine by platform" in html.unescape(page)


def test_new_request_form_checks_and_files(world: PageWorld, client: Any) -> None:
    vpcs, erin = world.vpcs, world.users["erin"]
    assert "Your VPC (requester)" in text(get(client, erin, "/requests/new/"))
    body = {
        "requester_vpc": vpcs["eng-sandbox"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "sandbox",
    }
    fragment = text(client.post("/requests/new/check/", body))
    assert "will be refused" in fragment and "cidr_overlap" in fragment and "disabled" in fragment
    body["requester_vpc"] = vpcs["eng-build"].vpc_id
    fragment = text(client.post("/requests/new/check/", body))
    assert "all can work" in fragment and "disabled" not in fragment
    response = client.post("/requests/new/", {**body, "submit": "1"})
    created = PeeringRequest.objects.get(requester_vpc=vpcs["eng-build"])
    assert response.status_code == 302 and response.url == f"/requests/{created.pk}/"
