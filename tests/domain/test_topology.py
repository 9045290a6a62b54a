"""The topology picture's geometry (requests_app/domain/topology.py): pure, no database.

The layout tests build a network of 52 VPCs (50 spokes, 2 hubs) in 3 regions and check what makes
the picture readable: no two circles overlap, nothing leaves the viewBox, labels keep clear of each
other and of other nodes, edges go around the nodes they do not join, and the same input (in any
order) gives the same picture. (The page that draws it: tests/web/test_topology_page.py.)
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest

from requests_app.domain import topology as geometry
from requests_app.domain.status import Status
from requests_app.domain.topology import EdgeSpec, NodeSpec, Picture, edge_kind, layout, polyline_distance

Point = tuple[float, float]


# --- geometry helpers ----------------------------------------------------------------------------
def _segment_point_distance(p: Point, a: Point, b: Point) -> float:
    return polyline_distance(p, [a, b])


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


def _segment_distance(a: Point, b: Point, c: Point, d: Point) -> float:
    if _segments_cross(a, b, c, d):
        return 0.0
    return min(
        _segment_point_distance(a, c, d),
        _segment_point_distance(b, c, d),
        _segment_point_distance(c, a, b),
        _segment_point_distance(d, a, b),
    )


# Upper bounds of a glyph's average width at the labels' 11px (bold for account headings), set
# here rather than taken from the module, so that a layout that underestimates text fails.
GLYPH = 0.6 * 11
BOLD_GLYPH = 0.65 * 11


def _labels(picture: Picture) -> list[tuple[str, Any, tuple[Point, Point]]]:
    """(owner key, mark, centre line) of every label: node labels and account headings."""
    out = [(n.spec.key, n.label, replace(n.label, char_width=GLYPH).extent()) for n in picture.nodes]
    out += [(f"account:{m.title}", m, replace(m, char_width=BOLD_GLYPH).extent()) for m in picture.account_labels]
    return out


# --- a synthetic network -------------------------------------------------------------------------
HUBS = (
    NodeSpec("vpc-hub-use1", "services-use1", "us-east-1", "111111111111", "shared-services", True, ("10.0.0.0/16",)),
    NodeSpec("vpc-hub-euw1", "services-euw1", "eu-west-1", "111111111111", "shared-services", True, ("10.100.0.0/16",)),
)
SPOKE_REGIONS = ["us-east-1"] * 30 + ["eu-west-1"] * 14 + ["ap-southeast-2"] * 6


def _network(spokes_per_region: list[str] | None = None) -> tuple[list[NodeSpec], list[EdgeSpec]]:
    regions = SPOKE_REGIONS if spokes_per_region is None else spokes_per_region
    nodes = list(HUBS)
    edges = []
    kinds = [kind for kind, _ in geometry.EDGE_KINDS]
    for i, region in enumerate(regions):
        account = i % 7
        nodes.append(
            NodeSpec(
                f"vpc-{i:04d}",
                f"department-application-{i}",
                region,
                f"{account + 2:012d}",
                f"account-{account}",
                cidrs=(f"10.{i}.0.0/16",),
            )
        )
        hub = "vpc-hub-euw1" if region == "eu-west-1" else "vpc-hub-use1"  # ap-southeast-2 peers across regions
        edges.append(EdgeSpec(f"vpc-{i:04d}", hub, kinds[i % len(kinds)], "x", request_id=str(uuid.UUID(int=i + 1))))
    # Spoke to spoke, hub to hub (inter-region), and a second edge for one pair.
    edges.append(EdgeSpec("vpc-0001", "vpc-0015", "active", "active", request_id=str(uuid.UUID(int=900))))
    edges.append(EdgeSpec("vpc-hub-use1", "vpc-hub-euw1", "active", "active", request_id=str(uuid.UUID(int=901))))
    edges.append(EdgeSpec("vpc-0003", "vpc-hub-use1", "unmanaged", "active", connection_id="pcx-unmanaged"))
    return nodes, edges


def _crowded_region() -> tuple[list[NodeSpec], list[EdgeSpec]]:
    """Three hubs in one region, 40 spokes with long names in 9 accounts, every spoke peered to a hub."""
    nodes = [
        NodeSpec(f"vpc-hub{i}", f"services-hub-number-{i}", "us-east-1", "111111111111", "shared-services", True)
        for i in range(3)
    ]
    edges = []
    for i in range(40):
        nodes.append(
            NodeSpec(
                f"vpc-{i:04d}",
                f"payroll-batch-processing-{i}",
                "us-east-1",
                f"{i % 9 + 2:012d}",
                f"a-long-account-name-number-{i % 9}",
            )
        )
        edges.append(
            EdgeSpec(f"vpc-{i:04d}", f"vpc-hub{i % 3}", "active", "active", request_id=str(uuid.UUID(int=i + 1)))
        )
    return nodes, edges


SCENARIOS = {
    "50 spokes, 2 hubs, 3 regions": _network,
    "3 hubs and 40 spokes in one region": _crowded_region,
    "one VPC": lambda: ([HUBS[0]], []),
}


@pytest.fixture(scope="module")
def picture() -> Picture:
    nodes, edges = _network()
    return layout(nodes, edges)


@pytest.fixture(scope="module", params=list(SCENARIOS))
def any_picture(request: Any) -> Picture:
    nodes, edges = SCENARIOS[request.param]()
    return layout(nodes, edges)


# --- layout --------------------------------------------------------------------------------------
def test_fifty_spokes_two_hubs_three_regions(picture: Picture) -> None:
    assert len(picture.nodes) == 52
    assert len(picture.edges) == 53
    assert [p.region for p in picture.panels] == ["ap-southeast-2", "eu-west-1", "us-east-1"]
    assert {n.spec.key for n in picture.nodes if n.spec.is_hub} == {"vpc-hub-use1", "vpc-hub-euw1"}


def test_node_circles_do_not_overlap(any_picture: Picture) -> None:
    for a, b in itertools.combinations(any_picture.nodes, 2):
        gap = math.hypot(a.x - b.x, a.y - b.y) - a.r - b.r
        assert gap >= geometry.NODE_GAP - 0.5, (a.spec.key, b.spec.key, gap)


def test_everything_is_inside_the_view_box(any_picture: Picture) -> None:
    picture = any_picture
    assert picture.view_box == f"0 0 {picture.width:g} {picture.height:g}"
    for n in picture.nodes:
        assert n.r <= n.x <= picture.width - n.r and n.r <= n.y <= picture.height - n.r, n.spec.key
    for _, mark, (start, end) in _labels(picture):
        for x, y in (start, end):
            assert 0 <= x <= picture.width and 0 <= y <= picture.height, mark
    for e in picture.edges:
        assert all(0 <= x <= picture.width and 0 <= y <= picture.height for x, y in e.points), e.spec
    # Every node and label inside its region's panel.
    panels = {p.region: p for p in picture.panels}
    for n in picture.nodes:
        p = panels[n.spec.region]
        assert p.x + n.r <= n.x <= p.x + p.width - n.r and p.y + n.r <= n.y <= p.y + p.height - n.r
        for x, y in replace(n.label, char_width=GLYPH).extent():
            assert p.x <= x <= p.x + p.width and p.y + geometry.TITLE_H <= y <= p.y + p.height, n.label


def test_panels_do_not_overlap(any_picture: Picture) -> None:
    for a, b in itertools.combinations(any_picture.panels, 2):
        apart = a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
        assert apart, (a, b)


def test_labels_are_legible(any_picture: Picture) -> None:
    labels = _labels(any_picture)
    for n in any_picture.nodes:
        assert len(n.label.text) <= geometry.LABEL_CHARS
        # A label keeps clear of every node but its own.
        for key, mark, (start, end) in labels:
            if key != n.spec.key:
                clearance = _segment_point_distance((n.x, n.y), start, end) - n.r
                assert clearance >= geometry.FONT / 2, (n.spec.key, mark.text, clearance)
    # Two labels never share a line of text.
    for (_, m1, s1), (_, m2, s2) in itertools.combinations(labels, 2):
        assert _segment_distance(*s1, *s2) >= geometry.FONT, (m1.text, m2.text)


def test_edges_go_around_the_nodes_they_do_not_join(any_picture: Picture) -> None:
    for e in any_picture.edges:
        assert e.points[0] == (e.source.x, e.source.y) and e.points[-1] == pytest.approx((e.target.x, e.target.y))
        for n in any_picture.nodes:
            if n is not e.source and n is not e.target:
                assert polyline_distance((n.x, n.y), e.points) > n.r, (e.spec.source, e.spec.target, n.spec.key)


def test_inter_region_edges_are_drawn(picture: Picture) -> None:
    across = [e for e in picture.edges if e.source.spec.region != e.target.spec.region]
    assert {(e.source.spec.region, e.target.spec.region) for e in across} == {
        ("ap-southeast-2", "us-east-1"),
        ("us-east-1", "eu-west-1"),
    }


def test_a_pair_with_two_edges_gets_two_distinct_paths() -> None:
    nodes, _ = _network(["us-east-1"] * 3)
    edges = [
        EdgeSpec("vpc-0000", "vpc-hub-use1", "active", "active", request_id=str(uuid.UUID(int=1))),
        EdgeSpec("vpc-hub-use1", "vpc-0000", "unmanaged", "active", connection_id="pcx-1"),
    ]
    first, second = layout(nodes, edges).edges
    assert first.d != second.d
    assert "Q" in second.d


def test_layout_is_deterministic(picture: Picture) -> None:
    nodes, edges = _network()
    shuffled_nodes, shuffled_edges = nodes[:], edges[:]
    random.Random(7).shuffle(shuffled_nodes)
    random.Random(8).shuffle(shuffled_edges)
    assert layout(shuffled_nodes, shuffled_edges) == picture
    assert layout(nodes, edges) == picture


def test_spokes_are_clustered_by_account_around_the_hub() -> None:
    nodes, edges = _network(["us-east-1"] * 12)
    pic = layout(nodes, edges)
    panel = next(p for p in pic.panels if p.region == "us-east-1")
    cx, cy = panel.x + panel.width / 2, panel.y + geometry.TITLE_H + panel.width / 2
    hub = next(n for n in pic.nodes if n.spec.key == "vpc-hub-use1")
    assert hub.x == pytest.approx(cx, abs=0.2) and hub.y < cy  # the hub column's centre, the hub's label below it
    spokes = [n for n in pic.nodes if not n.spec.is_hub]
    # One ring: every spoke the same distance from the hub column's centre.
    radii = {round(math.hypot(n.x - cx, n.y - cy)) for n in spokes}
    assert len(radii) == 1
    # Clockwise from the top, a spoke's account never comes back once another has started.
    order = sorted(spokes, key=lambda n: math.atan2(n.x - cx, -(n.y - cy)) % (2 * math.pi))
    accounts = [k for k, _ in itertools.groupby(n.spec.account_id for n in order)]
    assert len(accounts) == len(set(accounts)) == 7
    assert sorted(m.text for m in pic.account_labels) == [f"account-{i}" for i in range(7)]
    assert all("Account account-" in m.title for m in pic.account_labels)


def test_panels_grow_with_spokes_and_use_two_rings_past_one_ring_max() -> None:
    sizes = []
    for count in (1, 5, 12, 20, 30, 50, 80):
        pic = layout(*_network(["us-east-1"] * count))
        panel = next(p for p in pic.panels if p.region == "us-east-1")
        sizes.append(panel.width)
        cx, cy = panel.x + panel.width / 2, panel.y + geometry.TITLE_H + panel.width / 2
        radii = {round(math.hypot(n.x - cx, n.y - cy)) for n in pic.nodes if not n.spec.is_hub}
        slots = count + min(count, 7)  # spokes plus one heading per account
        assert len(radii) == (1 if slots <= geometry.ONE_RING_MAX else 2), (count, radii)
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_labels_are_truncated_and_titles_are_full() -> None:
    long_name = "a-very-long-vpc-name-for-the-payroll-batch-jobs"
    spec = NodeSpec(
        "vpc-0abc",
        long_name,
        "us-east-1",
        "222222222222",
        "finance-prod",
        cidrs=("10.1.0.0/16", "10.11.0.0/16"),
        department="Finance",
    )
    pic = layout([spec], [])
    (node,) = pic.nodes
    assert node.label.text == long_name[:17] + "…" and len(node.label.text) == geometry.LABEL_CHARS
    assert node.spec.tooltip.splitlines() == [
        f"{long_name} (vpc-0abc)",
        "Account: finance-prod (222222222222), Finance",
        "Region: us-east-1",
        "CIDRs: 10.1.0.0/16, 10.11.0.0/16",
    ]


def test_edges_to_nodes_not_drawn_are_dropped() -> None:
    nodes, _ = _network(["us-east-1"] * 2)
    edges = [
        EdgeSpec("vpc-0000", "vpc-elsewhere", "active", "active", request_id=str(uuid.UUID(int=1))),
        EdgeSpec("vpc-0000", "vpc-0001", "pending", "pending_approval", request_id=str(uuid.UUID(int=2))),
    ]
    assert [(e.spec.source, e.spec.target) for e in layout(nodes, edges).edges] == [("vpc-0000", "vpc-0001")]


def test_empty_network() -> None:
    pic = layout([], [])
    assert pic.nodes == pic.edges == pic.panels == ()


@pytest.mark.parametrize(
    ("status", "drift", "kind"),
    [
        (Status.PENDING_APPROVAL, None, "pending"),
        (Status.APPROVED, None, "pending"),
        (Status.PROVISIONING, None, "pending"),
        (Status.ACTIVE, None, "active"),
        (Status.ACTIVE, {"findings": ["route missing"]}, "drifted"),
        (Status.FAILED, None, "failed"),
        (Status.DECOMMISSIONING, None, "decommissioning"),
        (Status.REJECTED, None, None),
        (Status.CANCELLED, None, None),
        (Status.EXPIRED, None, None),
        (Status.DECOMMISSIONED, None, None),
    ],
)
def test_edge_kind(status: Status, drift: Any, kind: str | None) -> None:
    assert edge_kind(status, drift) == kind
