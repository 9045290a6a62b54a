"""Helpers of the page tests: the demo world with one request fiona filed, and reading pages."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User

from requests_app import audit
from requests_app.models import PeeringRequest, Vpc
from tests.fixtures.world import DemoWorld

LIST_PAGES = ["/", "/requests/new/", "/approvals/", "/topology/", "/inventory/", "/audit/"]
ACTIONS = ["approve", "reject", "cancel", "retry", "decommission", "repair"]


@dataclass(frozen=True)
class PageWorld:
    """The demo world with `rid`, the request fiona filed (finance-app → services-use1), pending approval."""

    users: dict[str, User]
    vpcs: dict[str, Vpc]
    rid: str


def with_fionas_request(world: DemoWorld, api: Any) -> PageWorld:
    """File fiona's request (finance-app → services-use1, CHG-4711) through the API."""
    vpcs = world.vpcs
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
    return PageWorld(users=world.users, vpcs=world.vpcs, rid=response.json()["id"])


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


def approve_as_nina(client: Any, world: PageWorld) -> None:
    client.force_login(world.users["nina"])
    response = client.post(f"/requests/{world.rid}/approve/", {"comment": "fine by platform"})
    assert response.status_code == 302
    assert PeeringRequest.objects.get(pk=world.rid).status == "approved"
