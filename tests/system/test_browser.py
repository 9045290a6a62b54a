"""The core flow in a real browser (Debian's chromium driven by Playwright), against a live
server, a real worker process and the sandbox (`demo_world`); the pages that only file or refuse
run on the demo world from rows (`demo_rows`)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from tests.fixtures import ROOT
from tests.fixtures.clients import file_finance_request
from tests.fixtures.processes import wait_for_status
from tests.fixtures.world import DEMO_PASSWORD, DemoWorld

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still synchronous, which Django would otherwise refuse.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()
    if saved is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


SCREENSHOTS = ROOT / "docs" / "screenshots"
CSP_VIOLATIONS: list[str] = []


def login(browser: Any, base: str, username: str, *, javascript: bool = True, phone: bool = False) -> Any:
    options: dict[str, Any] = {"java_script_enabled": javascript}
    if phone:
        options.update(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    else:
        options.update(viewport={"width": 1280, "height": 900})
    page = browser.new_context(**options).new_page()
    # Any Content-Security-Policy violation shows up on the console; the test fails on one.
    page.on("console", lambda m: "Content Security Policy" in m.text and CSP_VIOLATIONS.append(m.text))
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return page


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot for the README (docs/screenshots/), refreshed on every run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_file_approve_and_watch_a_peering_become_active_in_the_browser(
    browser: Any, live_server: Any, worker: Any, demo_world: DemoWorld
) -> None:
    base = live_server.url
    vpcs = demo_world.vpcs
    CSP_VIOLATIONS.clear()

    # The requester picks the sandbox VPC first: the overlap shows up live, before any submit.
    erin = login(browser, base, "erin")
    erin.get_by_role("link", name="New request").first.click()
    erin.get_by_label("Your VPC (requester)").select_option(vpcs["eng-sandbox"].vpc_id)
    erin.get_by_label("Peer VPC (accepter)").select_option(vpcs["services-use1"].vpc_id)
    live = erin.locator("#live-checks")
    live.get_by_text("will be refused").wait_for()
    assert "cidr_overlap" in live.inner_text() and "10.0.128.0/20" in live.inner_text()
    assert erin.get_by_role("button", name="File request").is_disabled()
    shoot(erin, "new-request-overlap")

    erin.get_by_label("Your VPC (requester)").select_option(vpcs["eng-build"].vpc_id)
    erin.get_by_label("Justification").fill("Build agents need AD, scanning and logging")
    erin.get_by_label("Ticket reference").fill("INC0042")
    live.get_by_text("all can work").wait_for()
    erin.locator("#submit-why").wait_for(state="detached")
    assert "CreateVpcPeeringConnection" in live.inner_text()
    shoot(erin, "new-request")
    erin.get_by_role("button", name="File request").click()
    erin.wait_for_url("**/requests/*/")
    request_id = erin.url.rstrip("/").rsplit("/", 1)[-1]
    assert "pending approval" in erin.inner_text("main")
    # The filer is offered cancel, never approve.
    assert erin.get_by_role("button", name="Cancel").count() == 1
    assert erin.get_by_role("button", name="Approve").count() == 0

    nina = login(browser, base, "nina")
    nina.get_by_role("link", name="Approvals").click()
    row = nina.locator("tr", has_text="eng-build")
    assert "erin" in row.inner_text() and "checks: all pass" in row.inner_text()
    shoot(nina, "approvals")
    row.get_by_label("Comment on eng-build").fill("AD access approved for the build fleet")
    row.get_by_role("button", name="Approve").click()
    assert "Done: approve." in nina.inner_text("main")

    # The requester's page, left open since filing, reaches `active` by itself: it notices the
    # approval (htmx polls /watch/ and reloads), then follows the work in AWS without reloading.
    erin.locator("#request-status").get_by_text("active", exact=True).wait_for(timeout=90_000)
    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason
    text = erin.inner_text("main")
    assert done.aws_peering_connection_id in text
    assert "AcceptVpcPeeringConnection" in text and "111111111111" in text
    shoot(erin, "request-active")
    erin.goto(f"{base}/")
    assert "INC0042" in erin.inner_text("main")
    shoot(erin, "requester-dashboard")

    # The topology draws the new peering as an active edge that links to the request.
    nina.goto(f"{base}/topology/")
    edge = nina.locator(f'svg a[href="/requests/{request_id}/"]')
    assert edge.count() >= 1
    assert edge.first.locator(".edge.edge-active").count() == 1

    # The audit export, fetched with the approver's session, holds the approval with its hashes.
    nina.goto(f"{base}/audit/?request={request_id}")
    shoot(nina, "audit")
    export = nina.request.get(f"{base}/audit/export.jsonl?request={request_id}")
    *rows, closing = [json.loads(line) for line in export.text().splitlines()]
    assert closing["anchor"]["head_hash"] == rows[-1]["hash"]  # the export's signed closing line
    approvals = [r for r in rows if r["action"] == "request.approved"]
    assert len(approvals) == 1 and approvals[0]["actor_label"] == "nina" and len(approvals[0]["hash"]) == 64
    csv_export = nina.request.get(f"{base}/audit/export.csv?request={request_id}").text()
    assert "request.approved" in csv_export and approvals[0]["hash"] in csv_export

    admin = login(browser, base, "admin")
    admin.goto(f"{base}/topology/")  # an administrator sees every account's VPCs
    assert admin.locator(f'svg a[href="/requests/{request_id}/"] .edge-active').count() == 1
    shoot(admin, "topology")
    admin.goto(f"{base}/inventory/")
    assert "Sync now" in admin.inner_text("main")
    shoot(admin, "inventory")
    # The API documentation renders from the portal's own files, under the same policy.
    admin.goto(f"{base}/api/docs/")
    admin.get_by_text("/api/v1/peering-requests/", exact=True).first.wait_for()
    admin.goto(f"{base}/api/redoc/")
    admin.get_by_text("Peering Portal API").first.wait_for()
    phone = login(browser, base, "erin", phone=True)
    phone.goto(f"{base}/requests/{request_id}/")
    shoot(phone, "request-phone")
    # Redoc's bundle links its "powered by" logo from its CDN; the policy blocks it, as it should.
    assert [v for v in CSP_VIOLATIONS if "cdn.redoc.ly" not in v] == []


def test_without_javascript_an_overlapping_request_is_refused_with_both_cidrs_named(
    browser: Any, live_server: Any, demo_rows: DemoWorld
) -> None:
    """The core flow works without JavaScript; the server refuses what live checks would flag."""
    vpcs = demo_rows.vpcs
    erin = login(browser, live_server.url, "erin", javascript=False)
    erin.goto(f"{live_server.url}/requests/new/")
    erin.get_by_label("Your VPC (requester)").select_option(vpcs["eng-sandbox"].vpc_id)
    erin.get_by_label("Peer VPC (accepter)").select_option(vpcs["services-use1"].vpc_id)
    erin.get_by_label("Justification").fill("build agents need AD")
    erin.get_by_role("button", name="File request").click()
    alert = erin.locator(".messages .error").inner_text()
    assert "not filed" in alert and "10.0.128.0/20" in alert and "10.0.0.0/16" in alert
    assert erin.url.endswith("/requests/new/")
    from requests_app.models import PeeringRequest

    assert not PeeringRequest.objects.exists()


def test_an_outsider_gets_404_for_another_departments_request_page(
    browser: Any, live_server: Any, demo_rows: DemoWorld, api: Any
) -> None:
    filed = file_finance_request(api, demo_rows.vpcs)
    harry = login(browser, live_server.url, "harry")
    response = harry.goto(f"{live_server.url}/requests/{filed['id']}/")
    assert response.status == 404


def test_the_form_checks_live_and_explains_why_it_cannot_be_filed(
    browser: Any, live_server: Any, demo_rows: DemoWorld
) -> None:
    vpcs = demo_rows.vpcs
    erin = login(browser, live_server.url, "erin")
    erin.goto(f"{live_server.url}/requests/new/")
    erin.get_by_label("Your VPC (requester)").select_option(vpcs["eng-sandbox"].vpc_id)
    erin.get_by_label("Peer VPC (accepter)").select_option(vpcs["services-use1"].vpc_id)
    # No page load: htmx swaps in the checks and disables the submit button with the reason.
    live = erin.locator("#live-checks")
    live.get_by_text("will be refused").wait_for()
    assert "10.0.128.0/20" in live.inner_text()
    assert erin.get_by_role("button", name="File request").is_disabled()
    assert "cidr_overlap" in erin.locator("#submit-why").inner_text()

    erin.get_by_label("Your VPC (requester)").select_option(vpcs["eng-build"].vpc_id)
    live.get_by_text("all can work").wait_for()
    assert "write a justification" in erin.locator("#submit-why").inner_text()
    erin.get_by_label("Justification").fill("build agents need AD")
    erin.locator("#submit-why").wait_for(state="detached")
    assert erin.get_by_role("button", name="File request").is_enabled()
    assert "CreateVpcPeeringConnection" in live.inner_text()
