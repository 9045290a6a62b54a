"""Every pre-flight check, one table row per (check code, status), through every path that runs it.

Each row changes the demo world a little (a quota override, a route added to a table's JSON, DNS
turned off, an old `synced_at`, a request or an AWS connection that already holds the pair), then
asks for one peering and expects one check to come back with one status. The same row is sent
through:

1. the service, `preflight.peering_request_evaluate`;
2. the API, preflight (200 with `checks`) and create (201, or 400 whose `checks` are the
   preflight's and whose `errors` name the failing checks; a refused create files nothing);
3. the HTML form, `/requests/new/` with `check=1`, and the live-check fragment
   `/requests/new/check/`, which must render exactly the same checks, escaped.

Rows whose status is `None` are the "pass" case of a check that never reports `pass`: a request
that can be filed and in which the code does not appear at all.

Building the demo world (sandbox VPCs, inventory sync) costs seconds, so it is built once for this
module, inside a transaction that is rolled back when the module ends; every test then runs in a
savepoint of its own (pytest-django's usual per-test transaction), so a row's changes never reach
the next row. `test_rows_start_from_the_untouched_demo_world` checks that isolation.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils.html import escape
from rest_framework.test import APIClient

from requests_app.domain import checks as rules
from requests_app.integrations import tokens
from requests_app.inventory.network import LIVE_AWS_STATES
from requests_app.models import AwsAccount, ObservedPeering, PeeringRequest, Vpc
from requests_app.peering import permissions, preflight
from tests.fixtures.sandbox import ec2_as
from tests.peering.checks_table import cases_network_and_quotas, cases_vpcs_and_routes
from tests.peering.checks_table.world import FINANCE, SERVICES, Case, World, synced

pytestmark = pytest.mark.django_db

URL = "/api/v1/peering-requests/"
PREFLIGHT_URL = f"{URL}preflight/"
FORM_URL = "/requests/new/"
LIVE_CHECK_URL = "/requests/new/check/"
JUSTIFICATION = "the app needs the shared directory and logging"
SEVERITY = {"pass": 0, "warn": 1, "fail": 2}
# The table: one row per (check code, status), in tests/peering/checks_table/cases_*.py.
CASES = [*cases_vpcs_and_routes.CASES, *cases_network_and_quotas.CASES]


# --- helpers ------------------------------------------------------------------------------------
def _api_as(user: Any) -> APIClient:
    client = APIClient()
    _, key = tokens.issue(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _form_data(fields: dict[str, Any]) -> dict[str, Any]:
    """The request as the HTML form posts it: ticked tables, comma-separated CIDRs, a checkbox."""
    data: dict[str, Any] = {k: fields[k] for k in ("requester_vpc", "accepter_vpc", "justification")}
    for name in ("requester_route_tables", "accepter_route_tables"):
        if fields.get(name):
            data[name] = fields[name]
    for name in ("requester_destination_cidrs", "accepter_destination_cidrs"):
        if fields.get(name):
            data[name] = ", ".join(fields[name])
    if fields.get("allow_dns_resolution"):
        data["allow_dns_resolution"] = "on"
    return data


def _rendered(check: dict[str, Any]) -> str:
    """One check as `_checks.html` renders it, detail escaped."""
    status = check["status"]
    return (
        f'<li class="check-{status}"><strong>{status.upper()}</strong> '
        f"<code>{check['code']}</code> {escape(check['detail'])}</li>"
    )


def _rendered_checks(html: str) -> list[str]:
    return re.findall(r'<li class="check-\w+">.*?</li>', html, re.S)


def _fails(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if c["status"] == "fail"]


def _assert_row(case: Case, checks: list[dict[str, Any]], w: World) -> None:
    """The row's code comes back with the row's status (its worst), naming what the row expects."""
    mine = [c for c in checks if c["code"] == case.code]
    if case.status is None:
        assert mine == [], checks
        return
    assert mine, f"no {case.code} in {checks}"
    assert max(SEVERITY[c["status"]] for c in mine) == SEVERITY[case.status], mine
    fragment = w.resolve(case.detail)
    assert any(fragment in c["detail"] for c in mine if c["status"] == case.status), (fragment, mine)


# --- the table, through every path --------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_is_the_same_through_service_api_and_form(world: World, client: Any, case: Case) -> None:
    assert PeeringRequest.objects.count() == 0  # rows do not see each other's changes
    if case.setup:
        case.setup(world)
    filed_before = PeeringRequest.objects.count()
    user = world.user(case.user)
    fields = {
        "requester_vpc": world.vpc_id(case.requester),
        "accepter_vpc": world.vpc_id(case.accepter),
        "justification": JUSTIFICATION,
        **{name: world.resolve(value) for name, value in case.body.items()},
    }
    can_file = case.status != "fail"

    # 1. the service
    evaluation = preflight.peering_request_evaluate(
        draft=preflight.PeeringDraft(**fields), department_ids=permissions.department_ids(user), viewer=user
    )
    checks = evaluation.checks
    _assert_row(case, checks, world)
    # The table's pass, warn and absent rows are requests that can be filed: warnings never block.
    assert evaluation.ok is can_file, _fails(checks)

    # 2. the API: preflight returns the same checks
    api = _api_as(user)
    answered = api.post(PREFLIGHT_URL, fields, format="json")
    assert answered.status_code == 200, answered.json()
    assert answered.json()["checks"] == checks
    assert answered.json()["ok"] is can_file

    # 3. the form: "Run checks" and the live checks render the same checks, escaped
    client.force_login(user)
    form_data = _form_data(fields)
    page = client.post(FORM_URL, {**form_data, "check": "1"})
    live = client.post(LIVE_CHECK_URL, form_data)
    assert page.status_code == 200
    assert live.status_code == 200
    page_html, live_html = page.content.decode(), live.content.decode()
    if case.form_refuses:
        # The form offers only the caller's VPCs as requester and VPCs with owners as peer, so it
        # refuses the choice before any check can run.
        refused = fields[case.form_refuses]
        assert f"Select a valid choice. {escape(refused)} is not one of the available choices." in page_html
        assert _rendered_checks(page_html) == []
        assert _rendered_checks(live_html) == []
        assert "Choose both VPCs to see the checks and the plan." in live_html
        # The live check names the field the form refused, rather than checking without it.
        assert "Cannot be filed yet: " in live_html
        assert f"Select a valid choice. {escape(refused)} is not one of the available choices." in live_html
    else:
        expected = [_rendered(c) for c in checks]
        for html in (page_html, live_html):
            assert _rendered_checks(html) == expected
            for check in checks:
                if check["code"] == case.code:
                    assert f"<code>{case.code}</code> {escape(check['detail'])}" in html
            assert ("will be refused" in html) is not can_file
            assert ("all can work" in html) is can_file
        if can_file:
            assert "Cannot be filed yet" not in live_html
        else:
            blocked = "; ".join(c["code"] for c in _fails(checks))
            assert f"Cannot be filed yet: these checks fail: {blocked}" in live_html
    assert PeeringRequest.objects.count() == filed_before  # checking files nothing

    # 2 (continued). the API: create files it, or refuses with the preflight's checks
    created = api.post(URL, fields, format="json")
    body = created.json()
    if can_file:
        assert created.status_code == 201, body
        assert body["status"] == "pending_approval"
        assert body["checks"] == checks
        assert PeeringRequest.objects.count() == filed_before + 1
        assert PeeringRequest.objects.get(pk=body["id"]).checks == checks
    else:
        assert created.status_code == 400, body
        assert body["type"] == "validation_error"
        assert body["checks"] == checks
        assert body["errors"] == [{"code": c["code"], "detail": c["detail"], "attr": c["attr"]} for c in _fails(checks)]
        assert case.code in [e["code"] for e in body["errors"]]
        assert PeeringRequest.objects.count() == filed_before


# --- the table itself ---------------------------------------------------------------------------
def _codes_run_checks_can_emit() -> dict[str, set[str]]:
    """Every code in `checks.py`, with the statuses it can be reported with, read from the source."""
    source = Path(rules.__file__).read_text()
    emitted: dict[str, set[str]] = {}
    for status, code in re.findall(r"_(fail|warn|pass)\(\s*\"([a-z_]+)\"", source):
        emitted.setdefault(code, set()).add(status)
    for code in re.findall(r"_quota_level\(\s*\"([a-z_]+)\"", source):
        emitted.setdefault(code, set()).update({"pass", "warn", "fail"})
    return emitted


def test_the_table_covers_every_check_code_and_status() -> None:
    emitted = _codes_run_checks_can_emit()
    assert len(emitted) >= 20, emitted  # the source scan itself works
    rows: dict[str, set[str | None]] = {}
    for case in CASES:
        rows.setdefault(case.code, set()).add(case.status)
    assert set(rows) <= set(emitted), set(rows) - set(emitted)
    for code, statuses in emitted.items():
        assert statuses <= rows.get(code, set()), f"{code}: no row for {statuses - rows.get(code, set())}"
        # A code that never passes needs a row where a valid request does not report it, except
        # the two whose passing counterpart has a code of its own (vpc_ownership, accepter_owner).
        if "pass" not in statuses and code not in {"not_your_vpc", "no_approver"}:
            assert None in rows[code], f"{code}: no row where it is absent from a valid request"
    assert "pass" in rows["vpc_ownership"]
    assert "pass" in rows["accepter_owner"]
    assert len({c.id for c in CASES}) == len(CASES)


# --- filing through the form --------------------------------------------------------------------
def test_the_form_files_despite_warnings_and_refuses_a_failing_check(world: World, client: Any) -> None:
    fiona = world.user("fiona")
    client.force_login(fiona)
    base = {"requester_vpc": world.ids[FINANCE], "justification": JUSTIFICATION}

    refused = client.post(
        FORM_URL,
        {**base, "accepter_vpc": world.ids[SERVICES], "requester_destination_cidrs": "8.8.8.0/24", "submit": "1"},
    )
    assert refused.status_code == 200
    assert "The request was not filed: 8.8.8.0/24 is not a private address range" in refused.content.decode()
    assert '<li class="check-fail"><strong>FAIL</strong> <code>non_private_cidr</code>' in refused.content.decode()
    assert PeeringRequest.objects.count() == 0

    # inter-region and a stale inventory only warn
    synced(FINANCE, "services-euw1", ago=timedelta(hours=48))(world)
    filed_ = client.post(FORM_URL, {**base, "accepter_vpc": world.ids["services-euw1"], "submit": "1"})
    assert filed_.status_code == 302
    created = PeeringRequest.objects.get()
    assert filed_["Location"] == f"/requests/{created.pk}/"
    assert created.requested_by == fiona
    warned = {c["code"] for c in created.checks if c["status"] == "warn"}
    assert warned == {"inter_region", "inventory_stale"}
    assert not _fails(created.checks)


def test_live_check_does_not_offer_to_file_with_a_ticked_route_table_that_is_gone(world: World, client: Any) -> None:
    """Fiona ticked services-private; before she files, a sync finds it deleted in AWS.

    The API refuses the request (route_table_not_found) and "Run checks" shows the form error; the
    live check must not tell her it can be filed, which it would if it quietly dropped the ticked
    table and checked "all of the peer's route tables" instead.
    """
    private = world.ids["services-private"]
    world.table("services-private").delete()
    fiona = world.user("fiona")
    fields = {
        "requester_vpc": world.ids[FINANCE],
        "accepter_vpc": world.ids[SERVICES],
        "justification": JUSTIFICATION,
        "accepter_route_tables": [private],
    }
    preflight = _api_as(fiona).post(PREFLIGHT_URL, fields, format="json").json()
    assert preflight["ok"] is False
    assert [c["code"] for c in _fails(preflight["checks"])] == ["route_table_not_found"]

    client.force_login(fiona)
    page = client.post(FORM_URL, {**_form_data(fields), "check": "1"}).content.decode()
    assert f"Select a valid choice. {private} is not one of the available choices." in page

    live = client.post(LIVE_CHECK_URL, _form_data(fields)).content.decode()
    assert "Cannot be filed yet" in live, "the live check offers to file a request the API refuses"
    assert not re.search(r'<button type="submit" name="submit" value="1"\s*>', live)


def test_rows_start_from_the_untouched_demo_world(world: World) -> None:
    """The module-long world is as `demo.register_portal` left it: earlier rows were rolled back."""
    assert PeeringRequest.objects.count() == 0
    assert ObservedPeering.objects.count() == 0
    assert set(
        AwsAccount.objects.values_list("max_peerings_per_vpc", "max_outstanding_requests", "max_routes_per_table")
    ) == {(None, None, None)}
    assert world.vpc(SERVICES).cidr_list() == ["10.0.0.0/16"]
    assert [len(rt.routes) for rt in world.vpc(FINANCE).route_tables.all()] == [2]
    assert world.vpc(SERVICES).route_tables.count() == 2
    assert all(v.dns_hostnames and v.dns_support and v.synced_at for v in Vpc.objects.all())
    # and the sandbox holds no peering connection (the AWS row's connection was deleted after it)
    live = [
        p
        for p in ec2_as("222222222222", "us-east-1").describe_vpc_peering_connections()["VpcPeeringConnections"]
        if p["Status"]["Code"] in LIVE_AWS_STATES
    ]
    assert live == []
