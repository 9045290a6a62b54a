"""The topology page against the demo world: who sees which VPCs and peerings, a filed request as a
coloured link to its page, HTML that needs no inline style or script, a number of queries that does
not grow with the number of VPCs and requests, and a picture laid out again only when the data changes.

The world is the demo world from rows, except where moto's default VPCs are the point (they exist
only in the sandbox).

(The picture's geometry, pure and without a database: tests/domain/test_topology.py.)
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app.domain import topology as geometry
from requests_app.domain.status import Status
from requests_app.models import ObservedPeering, PeeringRequest, Vpc, VpcCidr
from requests_app.web import topology
from tests.fixtures.world import DemoWorld

URL = "/topology/"
API_URL = "/api/v1/peering-requests/"


# --- the page ------------------------------------------------------------------------------------
def _page(client: Any, user: Any) -> Any:
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200
    return response


def _node_keys(response: Any) -> set[str]:
    return {n.spec.key for n in response.context["picture"].nodes}


def _names(response: Any) -> set[str]:
    return {n.spec.name for n in response.context["picture"].nodes}


def _request(requester: Vpc, accepter: Vpc, user: Any, status: str = Status.PENDING_APPROVAL, **extra: Any) -> Any:
    return PeeringRequest.objects.create(
        requester_vpc=requester,
        accepter_vpc=accepter,
        pair_key=PeeringRequest.make_pair_key(requester.vpc_id, accepter.vpc_id),
        justification="x",
        requested_by=user,
        department=requester.account.department,
        status=status,
        **extra,
    )


def _main(html: str) -> str:
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


@pytest.mark.django_db
def test_anonymous_is_sent_to_log_in(client: Any) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/") or "login" in response["Location"]


@pytest.mark.django_db
def test_a_user_who_can_see_no_vpc_gets_an_empty_state(client: Any, django_user_model: Any) -> None:
    response = _page(client, django_user_model.objects.create_user("nobody"))
    html = response.content.decode()
    assert "You can see no VPCs yet" in html
    assert '<svg class="topo' not in html


@pytest.mark.django_db
def test_fiona_sees_her_department_and_the_hubs(client: Any, demo_world: DemoWorld) -> None:
    response = _page(client, demo_world.users["fiona"])
    assert _names(response) - {""} == {"finance-app", "services-use1", "services-euw1"}
    # The sandbox's default VPCs: only finance's.
    defaults = [n.spec for n in response.context["picture"].nodes if not n.spec.name]
    assert defaults and {d.account_id for d in defaults} == {"222222222222"}
    assert all(d.display_name == "default VPC" and d.tooltip.startswith(f"default VPC ({d.key})\n") for d in defaults)
    html = response.content.decode()
    assert "hr-portal" not in html and "eng-build" not in html
    hubs = {n.spec.name for n in response.context["picture"].nodes if n.spec.is_hub}
    assert hubs == {"services-use1", "services-euw1"}
    assert [p.region for p in response.context["picture"].panels] == ["eu-west-1", "us-east-1"]
    assert "No peerings between the VPCs you can see yet" in html


@pytest.mark.django_db
def test_a_filed_request_is_a_pending_edge_linking_to_its_page(client: Any, demo_rows: DemoWorld, api: Any) -> None:
    vpcs = demo_rows.vpcs
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
    }
    created = api("fiona").post(API_URL, body, format="json")
    assert created.status_code == 201, created.json()
    request_id = created.json()["id"]

    response = _page(client, demo_rows.users["fiona"])
    html = response.content.decode()
    svg = re.search(r"<svg class=\"topo .*?</svg>", html, re.S)
    assert svg, html
    link = re.search(rf'<a class="edge-link" href="/requests/{request_id}/">(.*?)</a>', svg.group(0), re.S)
    assert link, svg.group(0)
    assert 'class="edge edge-pending"' in link.group(1)
    assert "<title>finance-app → services-use1: pending approval</title>" in link.group(1)
    # Hovering over finance-app shows its CIDR blocks.
    node_title = re.search(r'<g class="node node-spoke"><title>(finance-app \(vpc-.*?)</title>', svg.group(0), re.S)
    assert node_title and "10.1.0.0/16" in node_title.group(1) and "10.11.0.0/16" in node_title.group(1)
    assert "Region: us-east-1" in node_title.group(1)
    # The same peering in the plain table, with its status badge and link.
    table = html.split('<h2 id="peerings">', 1)[1]
    assert f'href="/requests/{request_id}/">finance-app → services-use1</a>' in table
    assert '<span class="badge status-pending_approval">pending approval</span>' in table
    # Accessible, and nothing the Content-Security-Policy would block.
    assert 'role="img" aria-labelledby="topo-title topo-desc"' in svg.group(0)
    assert '<title id="topo-title">' in svg.group(0) and '<desc id="topo-desc">' in svg.group(0)
    assert 'width="100%"' in svg.group(0) and "viewBox=" in svg.group(0)
    assert "style=" not in html
    assert "<style" not in html
    assert "<script" not in _main(html)
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert not re.search(r"\son[a-z]+=", html)
    assert '<link rel="stylesheet" href="/static/topology.css">' in html
    assert "unsafe-inline" not in response.get("Content-Security-Policy", "")


@pytest.mark.django_db
def test_a_visible_request_shows_both_of_its_vpcs_and_nothing_more(client: Any, demo_rows: DemoWorld) -> None:
    users, vpcs = demo_rows.users, demo_rows.vpcs
    request = _request(
        vpcs["finance-app"], vpcs["hr-portal"], users["fiona"], Status.ACTIVE, aws_peering_connection_id="pcx-0123"
    )
    fiona = _page(client, users["fiona"])
    assert "hr-portal" in _names(fiona)
    (edge,) = fiona.context["picture"].edges
    assert (edge.spec.kind, edge.spec.request_id) == ("active", str(request.pk))
    assert edge.source.spec.region == "us-east-1" and edge.target.spec.region == "eu-west-1"
    html = fiona.content.decode()
    assert "10.2.0.0/16" in html  # hr-portal's CIDR, on hover
    assert "us-east-1 → eu-west-1" in html and "<code>pcx-0123</code>" in html
    # Harry (HR) cannot see finance's request, so he does not see finance-app either.
    harry = _page(client, users["harry"])
    assert "finance-app" not in _names(harry) and "hr-portal" in _names(harry)
    assert harry.context["picture"].edges == ()
    assert "finance-app" not in harry.content.decode()
    # Erin (engineering) sees neither.
    erin = _page(client, users["erin"])
    assert not {"finance-app", "hr-portal"} & _names(erin)
    assert {"eng-build", "eng-sandbox"} <= _names(erin)


@pytest.mark.django_db
def test_terminal_requests_draw_nothing(client: Any, demo_rows: DemoWorld) -> None:
    users, vpcs = demo_rows.users, demo_rows.vpcs
    for status in (Status.REJECTED, Status.CANCELLED, Status.EXPIRED, Status.DECOMMISSIONED):
        _request(vpcs["finance-app"], vpcs["hr-portal"], users["fiona"], status)
    response = _page(client, users["fiona"])
    assert response.context["picture"].edges == ()
    assert "hr-portal" not in _names(response)


@pytest.mark.django_db
def test_edges_are_coloured_by_state(client: Any, demo_rows: DemoWorld) -> None:
    users, vpcs = demo_rows.users, demo_rows.vpcs
    fiona = users["fiona"]
    _request(vpcs["finance-app"], vpcs["services-use1"], fiona, Status.ACTIVE, drift={"findings": ["route gone"]})
    _request(vpcs["finance-app"], vpcs["services-euw1"], fiona, Status.DECOMMISSIONING)
    _request(vpcs["eng-build"], vpcs["services-use1"], users["erin"], Status.FAILED)
    _request(vpcs["eng-sandbox"], vpcs["services-euw1"], users["erin"], Status.PROVISIONING)
    older = _request(vpcs["eng-build"], vpcs["hr-portal"], users["erin"], Status.FAILED)
    newer = _request(vpcs["eng-build"], vpcs["hr-portal"], users["erin"], Status.APPROVED)
    response = _page(client, users["admin"])
    kinds = {(e.source.spec.name, e.target.spec.name): e.spec.kind for e in response.context["picture"].edges}
    assert kinds == {
        ("finance-app", "services-use1"): "drifted",
        ("finance-app", "services-euw1"): "decommissioning",
        ("eng-build", "services-use1"): "failed",
        ("eng-sandbox", "services-euw1"): "pending",
        ("eng-build", "hr-portal"): "pending",  # the pair's live request, not its older failure
    }
    html = response.content.decode()
    for kind in ("drifted", "decommissioning", "failed", "pending"):
        assert f'class="edge edge-{kind}"' in html
    assert f"/requests/{newer.pk}/" in html and f"/requests/{older.pk}/" not in html
    assert "active (drifted)" in html


@pytest.mark.django_db
def test_only_admins_see_peerings_not_made_by_the_portal(client: Any, demo_rows: DemoWorld) -> None:
    users, vpcs = demo_rows.users, demo_rows.vpcs
    now = timezone.now()

    def observed(connection_id: str, a: str, b: str, status: str, portal_request_id: str = "") -> None:
        ObservedPeering.objects.create(
            connection_id=connection_id,
            requester_vpc_id=vpcs[a].vpc_id,
            accepter_vpc_id=vpcs[b].vpc_id,
            requester_account_id=vpcs[a].account.account_id,
            accepter_account_id=vpcs[b].account.account_id,
            status=status,
            portal_request_id=portal_request_id,
            seen_at=now,
        )

    observed("pcx-shadow", "finance-app", "hr-portal", "active")
    observed("pcx-gone", "eng-build", "hr-portal", "deleted")
    observed("pcx-refused", "eng-sandbox", "hr-portal", "rejected")
    observed("pcx-portal", "eng-build", "services-use1", "active", portal_request_id=str(uuid.uuid4()))
    admin = _page(client, users["admin"])
    (edge,) = admin.context["picture"].edges
    assert (edge.spec.kind, edge.spec.connection_id, edge.spec.request_id) == ("unmanaged", "pcx-shadow", "")
    html = admin.content.decode()
    assert 'class="edge edge-unmanaged"' in html and "not made by the portal" in html
    assert "pcx-gone" not in html and "pcx-refused" not in html
    fiona = _page(client, users["fiona"])
    assert fiona.context["picture"].edges == ()
    assert "pcx-shadow" not in fiona.content.decode() and "edge-unmanaged" not in fiona.content.decode()


# --- queries -------------------------------------------------------------------------------------
def _add_vpcs_and_requests(world: DemoWorld, start: int, count: int) -> None:
    """`count` finance VPCs over three regions, each with two CIDRs and a request to a hub, to hr-portal
    (another department's, visible through the request), or (admin-visible) an unmanaged peering."""
    users, vpcs = world.users, world.vpcs
    finance = vpcs["finance-app"].account
    regions = ("us-east-1", "eu-west-1", "ap-southeast-2")
    statuses = (Status.PENDING_APPROVAL, Status.ACTIVE, Status.FAILED, Status.DECOMMISSIONING, Status.PROVISIONING)
    targets = (vpcs["services-use1"], vpcs["services-euw1"], vpcs["hr-portal"])
    for i in range(start, start + count):
        vpc = Vpc.objects.create(vpc_id=f"vpc-extra{i:05d}", account=finance, region=regions[i % 3], name=f"extra-{i}")
        VpcCidr.objects.create(vpc=vpc, cidr=f"10.{50 + i}.0.0/16", is_primary=True)
        VpcCidr.objects.create(vpc=vpc, cidr=f"100.64.{i}.0/24")
        _request(
            vpc, targets[i % 3], users["fiona"], statuses[i % 5], drift={"findings": ["x"]} if i % 10 == 1 else None
        )
        ObservedPeering.objects.create(
            connection_id=f"pcx-extra{i:05d}",
            requester_vpc_id=vpc.vpc_id,
            accepter_vpc_id=vpcs["eng-build"].vpc_id,
            requester_account_id=finance.account_id,
            accepter_account_id="444444444444",
            status="active",
            seen_at=timezone.now(),
        )


def _queries(client: Any, user: Any) -> tuple[int, Any]:
    client.force_login(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(URL)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


# Hub capacity (services.capacities): the hubs and their route tables (2), active connections seen
# in AWS (1), the portal's requests on them (1), the network model's routes (3), outstanding
# requests per account (2).
HUB_CAPACITY_QUERIES = 9


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["fiona", "admin", "nina"])
def test_queries_do_not_grow_with_vpcs_and_requests(client: Any, demo_rows: DemoWorld, username: str) -> None:
    user = demo_rows.users[username]
    _add_vpcs_and_requests(demo_rows, 0, 3)  # one of each kind of row, so every query runs from the start
    small, response = _queries(client, user)
    drawn_before = len(response.context["picture"].nodes)
    _add_vpcs_and_requests(demo_rows, 3, 40)
    large, response = _queries(client, user)
    assert len(response.context["picture"].nodes) >= drawn_before + (40 if username != "nina" else 0)
    assert large == small, (small, large)
    # 4 of them read the data's version, which keys the cached picture; the hubs' capacity below
    # it is read live, in a fixed number of queries however many hubs there are.
    assert small <= 16 + HUB_CAPACITY_QUERIES


@pytest.mark.django_db
def test_the_demo_world_page_has_a_bounded_number_of_queries(
    client: Any, demo_rows: DemoWorld, django_assert_max_num_queries: Any
) -> None:
    client.force_login(demo_rows.users["admin"])
    with django_assert_max_num_queries(16 + HUB_CAPACITY_QUERIES):
        assert client.get(URL).status_code == 200


# --- the cached picture --------------------------------------------------------------------------
def _file(api: Any, username: str, requester: Any, accepter: Any) -> str:
    response = api(username).post(
        "/api/v1/peering-requests/",
        {"requester_vpc": requester.vpc_id, "accepter_vpc": accepter.vpc_id, "justification": "bench"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


@pytest.mark.django_db
def test_the_topology_is_laid_out_again_only_when_the_data_changes(
    client: Any, demo_rows: DemoWorld, api: Any, monkeypatch: Any
) -> None:

    layouts = []
    real_layout = geometry.layout
    monkeypatch.setattr(topology, "layout", lambda *a, **k: layouts.append(1) or real_layout(*a, **k))
    client.force_login(demo_rows.users["nina"])
    first = client.get("/topology/").content.decode()
    second = client.get("/topology/").content.decode()
    assert len(layouts) == 1  # the second view came from the cache
    picture = slice(first.index("<svg"), first.rindex("</table>"))
    assert second[second.index("<svg") : second.rindex("</table>")] == first[picture]
    vpcs = demo_rows.vpcs
    request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    assert f"/requests/{request_id}/".encode() in client.get("/topology/").content
    assert len(layouts) == 2
    # Another user's view is laid out (and cached) on its own: visibility differs.
    client.force_login(demo_rows.users["harry"])
    assert f"/requests/{request_id}/".encode() not in client.get("/topology/").content
    assert len(layouts) == 3
