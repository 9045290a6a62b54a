"""The HTML pages: who gets what, what they show, what they cost in queries, and their CSP hygiene.

No worker runs: each test's transaction never commits, so approving enqueues nothing."""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import re
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app import audit
from requests_app.models import AuditEvent, ObservedPeering, PeeringRequest, ProvisioningStep, RouteTable, Vpc, VpcCidr

pytestmark = pytest.mark.django_db

LIST_PAGES = ["/", "/requests/new/", "/approvals/", "/topology/", "/inventory/", "/audit/"]
ACTIONS = ["approve", "reject", "cancel", "retry", "decommission", "repair"]


# --- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def world(demo_world: dict[str, Any], api: Any) -> dict[str, Any]:
    """The demo world with one request fiona filed (finance-app → services-use1), pending approval."""
    vpcs = demo_world["vpcs"]
    response = api("fiona").post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": vpcs["finance-app"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "the app needs the shared directory",
            "external_ref": "CHG-4711",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return {**demo_world, "rid": response.json()["id"]}


def get(client: Any, user: Any, url: str, **params: Any) -> Any:
    client.force_login(user)
    return client.get(url, params)


def text(response: Any) -> str:
    return response.content.decode()


def messages_in(page: str, kind: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(rf'<li class="{kind}">(.*?)</li>', page, re.S)]


def csp_problems(url: str, response: Any) -> list[str]:
    problems = []
    policy = response.get("Content-Security-Policy", "")
    if "script-src 'self'" not in policy or "'unsafe-inline'" in policy:
        problems.append(f"{url}: Content-Security-Policy is {policy!r}")
    page = text(response)
    inline = [tag for tag in re.findall(r"<script\b[^>]*>", page, re.I) if not re.search(r"\bsrc\s*=", tag, re.I)]
    if inline:
        problems.append(f"{url}: inline script {inline[:2]}")
    if re.search(r"<[a-z][^>]*\sstyle\s*=", page, re.I):
        problems.append(f"{url}: style= attribute")
    if re.search(r"<style\b", page, re.I):
        problems.append(f"{url}: <style> element")
    return problems


def history_rows(page: str) -> list[str]:
    """The rows of the page's history table (audit page or request page), without the empty-table row."""
    body = re.search(r'<table class="history">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, page[:500]
    return [r for r in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S) if "No events." not in r]


def export(client: Any, user: Any, fmt: str, **params: Any) -> Any:
    response = get(client, user, f"/audit/export.{fmt}", **params)
    assert response.status_code == 200
    assert response.streaming
    assert f'filename="peering-audit.{fmt}"' in response["Content-Disposition"]
    return b"".join(response.streaming_content).decode()


def verify(row: dict[str, Any]) -> None:
    """The documented offline check: drop id and hash, dump the rest canonically, HMAC it with the chain key."""
    rest = {k: v for k, v in row.items() if k not in ("id", "hash")}
    payload = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hmac.new(audit.chain_key(), payload.encode(), hashlib.sha256).hexdigest() == row["hash"], row


def make_request(requester: Vpc, accepter: Vpc, by: Any, **fields: Any) -> PeeringRequest:
    """A request row written directly (no checks, no audit), for pages that only need rows to show."""
    return PeeringRequest.objects.create(
        requester_vpc=requester,
        accepter_vpc=accepter,
        requested_by=by,
        department=requester.account.department,
        pair_key=PeeringRequest.make_pair_key(requester.vpc_id, accepter.vpc_id),
        **{"justification": "x", **fields},
    )


def approve_as_nina(client: Any, world: dict[str, Any]) -> None:
    client.force_login(world["users"]["nina"])
    response = client.post(f"/requests/{world['rid']}/approve/", {"comment": "fine by platform"})
    assert response.status_code == 302
    assert PeeringRequest.objects.get(pk=world["rid"]).status == "approved"


# --- access --------------------------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_log_in(world: dict[str, Any], client: Any) -> None:
    rid = world["rid"]
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
def test_every_page_renders_with_a_strict_csp(world: dict[str, Any], client: Any, username: str) -> None:
    """200 for each page the user may see; no inline script, no inline style, CSP sent."""
    detail, vpcs, problems = f"/requests/{world['rid']}/", world["vpcs"], []
    client.force_login(world["users"][username])
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


def test_outsiders_get_404_on_the_request_and_its_actions(world: dict[str, Any], client: Any) -> None:
    rid, harry = world["rid"], world["users"]["harry"]
    assert get(client, harry, f"/requests/{rid}/").status_code == 404
    for action in ACTIONS:
        response = client.post(f"/requests/{rid}/{action}/", {"comment": "let me in", "next": "approvals"})
        assert response.status_code == 404, action
    assert get(client, world["users"]["fiona"], f"/requests/{uuid.uuid4()}/").status_code == 404
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
    world: dict[str, Any], client: Any, username: str, action: str, reason: str
) -> None:
    rid = world["rid"]
    client.force_login(world["users"][username])
    response = client.post(f"/requests/{rid}/{action}/", {"comment": "trying"}, follow=True)
    assert response.redirect_chain == [(f"/requests/{rid}/", 302)]
    errors = messages_in(text(response), "error")
    assert len(errors) == 1 and errors[0].startswith(f"Could not {action}:") and reason in errors[0], errors
    stored = PeeringRequest.objects.get(pk=rid)
    assert (stored.status, stored.decided_by_id) == ("pending_approval", None)
    assert list(AuditEvent.objects.filter(request_id=rid).values_list("action", flat=True)) == ["request.submitted"]


def test_the_approver_approves_from_the_queue_and_returns_to_it(world: dict[str, Any], client: Any) -> None:
    rid, nina = world["rid"], world["users"]["nina"]
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


def test_reject_requires_and_records_the_comment(world: dict[str, Any], client: Any) -> None:
    rid, nina = world["rid"], world["users"]["nina"]
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
    assert "use the eu hub instead" in html.unescape(text(get(client, world["users"]["fiona"], f"/requests/{rid}/")))


# --- content -------------------------------------------------------------------------------------
def test_home_shows_badges_ticket_tally_and_filters(world: dict[str, Any], client: Any) -> None:
    fiona = world["users"]["fiona"]
    page = text(get(client, fiona, "/"))
    assert '<span class="badge status-pending_approval">' in page
    assert "<td>CHG-4711</td>" in page
    assert re.search(r'<ul class="tally".*?class="badge status-pending_approval">[^<]*: 1</a>', page, re.S), page
    assert "CHG-4711" in text(get(client, fiona, "/", q="chg-47"))
    assert "CHG-4711" in text(get(client, fiona, "/", status="pending_approval"))
    assert "No request matches." in text(get(client, fiona, "/", status="rejected"))
    assert "No request matches." in text(get(client, fiona, "/", q="no-such-ticket"))
    assert "CHG-4711" not in text(get(client, world["users"]["harry"], "/"))


def test_approvals_queue_oldest_first_with_checks_overdue_and_attention(
    world: dict[str, Any], client: Any, api: Any
) -> None:
    vpcs, users = world["vpcs"], world["users"]
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
    PeeringRequest.objects.filter(pk=world["rid"]).update(created_at=late)
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


def test_request_page_shows_timeline_history_and_actions(world: dict[str, Any], client: Any) -> None:
    rid, users = world["rid"], world["users"]
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


def test_audit_filters(world: dict[str, Any], client: Any) -> None:
    approve_as_nina(client, world)
    rid, users = world["rid"], world["users"]
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


def test_exports_carry_the_approval_with_verifiable_hashes(world: dict[str, Any], client: Any) -> None:
    approve_as_nina(client, world)
    rid, users = world["rid"], world["users"]
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


def test_an_unknown_export_format_is_404(world: dict[str, Any], client: Any) -> None:
    assert get(client, world["users"]["admin"], "/audit/export.xml").status_code == 404


def test_inventory_and_sync_are_for_administrators(world: dict[str, Any], client: Any) -> None:
    users = world["users"]
    admin_page = text(get(client, users["admin"], "/inventory/"))
    assert "Sync now" in admin_page and "222222222222" in admin_page
    fiona_page = text(get(client, users["fiona"], "/inventory/"))
    assert "Sync now" not in fiona_page and "Peerings not made by the portal" not in fiona_page
    assert "hr-portal" not in fiona_page and "finance-app" in fiona_page
    for outsider in ("fiona", "nina", "harry"):
        client.force_login(users[outsider])
        assert client.post("/inventory/accounts/222222222222/sync/").status_code == 404
    client.force_login(users["admin"])
    assert client.post("/inventory/accounts/999999999999/sync/").status_code == 404
    response = client.post("/inventory/accounts/222222222222/sync/", follow=True)
    assert response.redirect_chain == [("/inventory/", 302)]
    assert any(m.startswith("Synced 222222222222") for m in messages_in(text(response), "success"))
    assert AuditEvent.objects.filter(action="account.synced", account_id="222222222222").count() == 1


def test_new_request_form_checks_and_files(world: dict[str, Any], client: Any) -> None:
    vpcs, erin = world["vpcs"], world["users"]["erin"]
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


# --- no N+1 --------------------------------------------------------------------------------------
CYCLE = ["pending_approval", "approved", "provisioning", "active", "failed", "rejected", "decommissioning", "active"]


def grow(world: dict[str, Any], start: int, count: int) -> None:
    """`count` more finance VPCs, each with CIDRs, a route table, an owner, a request to services-use1
    (states cycling through CYCLE, one active one drifted), steps, an audit event and an unmanaged peering."""
    users, vpcs = world["users"], world["vpcs"]
    finance, hub, now = vpcs["finance-app"], vpcs["services-use1"], timezone.now()
    for i in range(start, start + count):
        vpc = Vpc.objects.create(
            vpc_id=f"vpc-load{i:05d}", account=finance.account, region="us-east-1", name=f"load-{i}", synced_at=now
        )
        VpcCidr.objects.bulk_create(
            [VpcCidr(vpc=vpc, cidr=f"172.16.{i}.0/24", is_primary=True), VpcCidr(vpc=vpc, cidr=f"172.17.{i}.0/24")]
        )
        RouteTable.objects.create(
            route_table_id=f"rtb-load{i:05d}",
            vpc=vpc,
            is_main=True,
            routes=[{"destination": f"172.16.{i}.0/24", "target": "local", "state": "active"}],
        )
        vpc.owners.add(users["sam"])
        status = CYCLE[i % len(CYCLE)]
        decided = status != "pending_approval"
        request = make_request(
            vpc,
            hub,
            users["fiona"],
            external_ref=f"LOAD-{i}",
            status=status,
            decided_by=users["nina"] if decided else None,
            decided_at=now if decided else None,
            failure_reason="quota" if status == "failed" else "",
            drift={"found_at": now.isoformat(), "findings": [{"detail": "route gone"}]}
            if i % len(CYCLE) == 3
            else None,
            checks=[{"code": "dns", "status": "warn", "detail": "no DNS"}],
            plan=[
                {
                    "operation": "CreateVpcPeeringConnection",
                    "account_id": "222222222222",
                    "region": "us-east-1",
                    "detail": "create",
                }
            ],
        )
        ProvisioningStep.objects.bulk_create(
            [
                ProvisioningStep(request=request, name=f"step {n}", position=n, state="done", started_at=now)
                for n in range(2)
            ]
        )
        audit.record(action="request.submitted", actor=users["fiona"], request=request, to_status="pending_approval")
        ObservedPeering.objects.create(
            connection_id=f"pcx-load{i:05d}",
            requester_vpc_id=vpc.vpc_id,
            accepter_vpc_id=hub.vpc_id,
            requester_account_id="222222222222",
            accepter_account_id="111111111111",
            status="active",
            seen_at=now,
        )


def count_queries(client: Any, user: Any, url: str) -> tuple[list[str], str]:
    client.force_login(user)
    assert client.get(url).status_code == 200  # warm up: sessions, content types, caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries], text(response)


def same_cost(few: list[str], many: list[str]) -> str:
    """Empty when both pages ran the same number of queries; else the queries that multiplied."""
    if len(few) == len(many):
        return ""
    shape = Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q)[:300] for q in many)
    shape.subtract(Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q)[:300] for q in few))
    grown = "\n".join(f"  +{n}: {q}" for q, n in shape.most_common(3) if n > 0)
    return f"{len(few)} queries with few rows, {len(many)} with many; repeated:\n{grown}"


@pytest.mark.parametrize(
    ("username", "url", "marker"),
    [
        ("fiona", "/", "LOAD-"),
        ("nina", "/approvals/", "LOAD-"),
        ("admin", "/inventory/", "vpc-load"),
        ("fiona", "/inventory/", "vpc-load"),
        ("admin", "/audit/", "request.submitted"),
        ("fiona", "/audit/", "request.submitted"),
        ("admin", "/topology/", "load-"),
        ("nina", "/topology/", "load-"),
    ],
)
def test_list_pages_cost_the_same_queries_for_few_and_many_rows(
    world: dict[str, Any], client: Any, username: str, url: str, marker: str
) -> None:
    user = world["users"][username]
    grow(world, 0, len(CYCLE))
    few, few_page = count_queries(client, user, url)
    grow(world, len(CYCLE), 4 * len(CYCLE))
    many, many_page = count_queries(client, user, url)
    assert many_page.count(marker) > few_page.count(marker) > 0  # the extra rows are on the page
    assert not same_cost(few, many), f"{url}: {same_cost(few, many)}"


def test_request_page_history_costs_the_same_queries_for_few_and_many_events(
    world: dict[str, Any], client: Any
) -> None:
    users, request = world["users"], PeeringRequest.objects.get(pk=world["rid"])

    def add(start: int, count: int) -> None:  # events by two actors (timeline entries too), and steps
        for i in range(start, start + count):
            audit.record(
                action="request.note",
                actor=users["nina" if i % 2 else "fiona"],
                request=request,
                message=f"note {i}",
                from_status="pending_approval",
                to_status="pending_approval" * (i % 3 > 0),
            )
            ProvisioningStep.objects.create(request=request, name=f"step {i}", position=i, started_at=timezone.now())

    add(0, 3)
    few, few_page = count_queries(client, users["fiona"], f"/requests/{request.pk}/")
    add(3, 27)
    many, many_page = count_queries(client, users["fiona"], f"/requests/{request.pk}/")
    assert len(history_rows(many_page)) == len(history_rows(few_page)) + 27
    assert not same_cost(few, many), same_cost(few, many)
