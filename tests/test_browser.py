"""The core flow in a real browser (Debian's chromium driven by Playwright), against a live
server, a real worker process and the sandbox."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.conftest import DEMO_PASSWORD, wait_for_status

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
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield instance
        instance.close()
    if saved is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


def login(browser: Any, base: str, username: str, *, javascript: bool = True) -> Any:
    page = browser.new_context(java_script_enabled=javascript).new_page()
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_file_approve_and_watch_a_peering_become_active_in_the_browser(
    browser: Any, live_server: Any, worker: Any, demo_world: dict[str, Any]
) -> None:
    base = live_server.url
    vpcs = demo_world["vpcs"]

    fiona = login(browser, base, "fiona")
    fiona.get_by_role("link", name="New request").first.click()
    fiona.get_by_label("Your VPC (requester)").select_option(vpcs["finance-app"].vpc_id)
    fiona.get_by_label("Peer VPC (accepter)").select_option(vpcs["services-use1"].vpc_id)
    fiona.get_by_label("Justification").fill("AD, scanning and logging for finance")
    fiona.get_by_label("Ticket reference").fill("INC0042")
    fiona.get_by_role("button", name="Run checks").click()
    assert "all can work" in fiona.locator("section[aria-live]").inner_text()
    assert "CreateVpcPeeringConnection" in fiona.content()
    fiona.get_by_role("button", name="File request").click()
    fiona.wait_for_url("**/requests/*/")
    request_id = fiona.url.rstrip("/").rsplit("/", 1)[-1]
    assert "pending approval" in fiona.inner_text("main")
    # The filer is offered cancel, never approve.
    assert fiona.get_by_role("button", name="Cancel").count() == 1
    assert fiona.get_by_role("button", name="Approve").count() == 0

    nina = login(browser, base, "nina")
    nina.get_by_role("link", name="Approvals").click()
    row = nina.locator("tr", has_text="finance-app")
    assert "fiona" in row.inner_text()
    row.get_by_role("button", name="Approve").click()
    assert "Done: approve." in nina.inner_text("main")

    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason
    fiona.goto(f"{base}/requests/{request_id}/")
    text = fiona.inner_text("main")
    assert "active" in text and done.aws_peering_connection_id in text
    assert "AcceptVpcPeeringConnection" in text and "111111111111" in text


def test_without_javascript_an_overlapping_request_is_refused_with_both_cidrs_named(
    browser: Any, live_server: Any, demo_world: dict[str, Any]
) -> None:
    """The core flow works without JavaScript; the server refuses what live checks would flag."""
    vpcs = demo_world["vpcs"]
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
    browser: Any, live_server: Any, demo_world: dict[str, Any], api: Any
) -> None:
    vpcs = demo_world["vpcs"]
    filed = api("fiona").post(
        "/api/v1/peering-requests/",
        {"requester_vpc": vpcs["finance-app"].vpc_id, "accepter_vpc": vpcs["services-use1"].vpc_id, "justification": "x"},
        format="json",
    ).json()
    harry = login(browser, live_server.url, "harry")
    response = harry.goto(f"{live_server.url}/requests/{filed['id']}/")
    assert response.status == 404


def test_the_form_checks_live_and_explains_why_it_cannot_be_filed(
    browser: Any, live_server: Any, demo_world: dict[str, Any]
) -> None:
    vpcs = demo_world["vpcs"]
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
