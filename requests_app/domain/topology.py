"""The topology picture's geometry: pure layout over plain node and edge values (no database).

Services VPCs (hubs) stand in a column at the centre of their region's panel; the other VPCs
(spokes) stand on a ring around them, clustered by account, each cluster opened by the account's
name. Labels are radial, so they never run into a neighbour's; past `ONE_RING_MAX` slots the ring
becomes two concentric rings, offset by half a step, so an inner label passes between two outer
nodes. Panels are packed left to right and wrap into rows; edges use absolute coordinates, so
peerings between regions are drawn too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from requests_app.domain.status import Status

# --- geometry (SVG user units; the SVG scales to the page width) ---------------------------------
SPOKE_R = 10.0


HUB_R = 18.0


FONT = 11.0  # label font size, also in topology.css


CHAR_W = 0.6 * FONT  # a generous average glyph width, so the estimates below are upper bounds


BOLD_CHAR_W = 0.65 * FONT


LABEL_CHARS = 18


ACCOUNT_CHARS = 20


LABEL_GAP = 4.0  # between a node's circle and its label


NODE_GAP = 10.0  # at least this much white between two node circles


LABEL_CLEAR = SPOKE_R + FONT / 2 + 4  # from an outer node's centre to an inner node's label


ONE_RING_MAX = 24  # slots (spokes + account headings) a single ring holds


HUB_STEP = 2 * HUB_R + FONT + 12  # hub centres in the hub column


PAD = 14.0


TITLE_H = 28.0


MIN_PANEL_HALF = 100.0  # room for the panel's title


PANEL_GAP = 24.0


MARGIN = 8.0


MAX_ROW_WIDTH = 1200.0  # about the page's width, so labels keep their size


SIZE_CLASSES = 12  # topo-w1 … topo-w12 in topology.css


EDGE_CLEARANCE = 3.0  # an edge passes at least this far from the circles it does not join


# --- what an edge's colour means -----------------------------------------------------------------
PENDING_STATUSES = frozenset({Status.PENDING_APPROVAL, Status.APPROVED, Status.PROVISIONING})


DRAWN_STATUSES = PENDING_STATUSES | {Status.ACTIVE, Status.FAILED, Status.DECOMMISSIONING}


# ObservedPeering states of connections that no longer peer anything ("missing": the last sync
# no longer found it in AWS).
GONE_AWS_STATES = ("deleted", "rejected", "expired", "failed", "missing")


EDGE_KINDS: tuple[tuple[str, str], ...] = (
    ("pending", "Pending: awaiting approval or being provisioned"),
    ("active", "Active"),
    ("drifted", "Active, but AWS differs from what the portal made (drift)"),
    ("failed", "Failed"),
    ("decommissioning", "Being decommissioned"),
    ("unmanaged", "Found in AWS, not made by the portal"),
)


# Drawing order: the states that need attention are drawn last, on top.
_Z_ORDER = {"unmanaged": 0, "active": 1, "decommissioning": 2, "pending": 3, "drifted": 4, "failed": 5}


def edge_kind(status: str, drift: object = None) -> str | None:
    """The colour class of a request's edge; None for requests that draw no edge (terminal ones)."""
    if status in PENDING_STATUSES:
        return "pending"
    if status == Status.ACTIVE:
        return "drifted" if drift is not None else "active"
    if status == Status.FAILED:
        return "failed"
    if status == Status.DECOMMISSIONING:
        return "decommissioning"
    return None


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- input values --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeSpec:
    key: str  # the AWS VPC id
    name: str
    region: str
    account_id: str
    account_name: str
    is_hub: bool = False
    cidrs: tuple[str, ...] = ()
    department: str = ""
    is_default: bool = False
    present: bool = True

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return "default VPC" if self.is_default else self.key

    @property
    def short(self) -> str:
        return truncate(self.display_name, LABEL_CHARS)

    @property
    def tooltip(self) -> str:
        account = f"{self.account_name} ({self.account_id})" if self.account_name else self.account_id
        lines = [
            f"{self.display_name} ({self.key})",
            f"Account: {account}" + (f", {self.department}" if self.department else ""),
            f"Region: {self.region}",
            "CIDRs: " + (", ".join(self.cidrs) or "none known"),
        ]
        if self.is_hub:
            lines.append("Services VPC (hub)")
        if not self.present:
            lines.append("No longer found in AWS")
        return "\n".join(lines)


@dataclass(frozen=True)
class EdgeSpec:
    source: str  # NodeSpec.key of the requester VPC
    target: str  # NodeSpec.key of the accepter VPC
    kind: str  # one of EDGE_KINDS
    status: str  # the request's status, or the AWS state of an unmanaged connection
    title: str = ""
    request_id: str = ""  # empty for connections not made by the portal
    connection_id: str = ""

    @property
    def status_label(self) -> str:
        label = self.status.replace("_", " ")
        return f"{label} (drifted)" if self.kind == "drifted" else label


# --- output values -------------------------------------------------------------------------------
def _transform(rotate: float, x: float, y: float) -> str:
    return f"rotate({rotate:g} {x:g} {y:g})" if rotate else ""


@dataclass(frozen=True)
class TextMark:
    """A label: `anchor` and `rotate` as SVG's text-anchor and rotate(); the text is vertically centred."""

    text: str
    x: float
    y: float
    anchor: str = "start"
    rotate: float = 0.0
    title: str = ""
    char_width: float = CHAR_W

    @property
    def transform(self) -> str:
        return _transform(self.rotate, self.x, self.y)

    def extent(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The label's centre line, start to end: a segment about FONT tall (an upper bound)."""
        length = len(self.text) * self.char_width
        lead = {"start": 0.0, "middle": -length / 2, "end": -length}[self.anchor]
        dx, dy = math.cos(math.radians(self.rotate)), math.sin(math.radians(self.rotate))
        x0, y0 = self.x + dx * lead, self.y + dy * lead
        return (x0, y0), (x0 + dx * length, y0 + dy * length)


@dataclass(frozen=True)
class PlacedNode:
    spec: NodeSpec
    x: float
    y: float
    r: float
    label: TextMark

    @property
    def role(self) -> str:
        return "hub" if self.spec.is_hub else "spoke"


@dataclass(frozen=True)
class PlacedEdge:
    spec: EdgeSpec
    source: PlacedNode
    target: PlacedNode
    d: str  # SVG path data: a straight line, or a quadratic curve around the nodes in the way
    points: tuple[tuple[float, float], ...]  # the path, sampled (for tests and clearance checks)


@dataclass(frozen=True)
class Panel:
    region: str
    x: float
    y: float
    width: float
    height: float
    vpc_count: int

    @property
    def title_x(self) -> float:
        return self.x + 10

    @property
    def title_y(self) -> float:
        return self.y + TITLE_H / 2 + 1

    @property
    def title(self) -> str:
        return f"{self.region} · {self.vpc_count} VPC{'' if self.vpc_count == 1 else 's'}"


@dataclass(frozen=True)
class Picture:
    width: float
    height: float
    panels: tuple[Panel, ...]
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    account_labels: tuple[TextMark, ...]

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width:g} {self.height:g}"

    @property
    def size_class(self) -> str:
        """A CSS class capping the picture's width (about 1.2 times its own), so a small one is not blown up."""
        return f"topo-w{min(SIZE_CLASSES, max(1, math.ceil(self.width / 100)))}"


# --- layout --------------------------------------------------------------------------------------
@dataclass
class _Local:
    """One region's drawing around its own centre (0, 0), before it is placed on the page."""

    nodes: list[tuple[NodeSpec, float, float, float, TextMark]]
    accounts: list[TextMark]
    half: float  # the panel's half width (and half height, below the title)


def _radial(text: str, theta: float, start: float, *, title: str = "", char_width: float = CHAR_W) -> TextMark:
    """A label on the ray at angle `theta` from the centre, starting `start` from it, never upside down."""
    x, y = start * math.cos(theta), start * math.sin(theta)
    degrees = math.degrees(theta)
    if math.cos(theta) >= -1e-9:
        return TextMark(text, x, y, "start", round(degrees, 2), title, char_width)
    return TextMark(text, x, y, "end", round(degrees - 180, 2), title, char_width)


def _ring_radii(slots: int, min_radius: float) -> tuple[float, float | None]:
    """The ring's radius, or the inner and outer radii of two concentric rings."""
    step = 2 * math.pi / slots
    if slots <= ONE_RING_MAX:
        if slots < 2:
            return min_radius, None
        return max(min_radius, (2 * SPOKE_R + NODE_GAP) / (2 * math.sin(step / 2))), None
    # Even slots on the inner ring, odd on the outer: neighbours on a ring are two steps apart,
    # and an inner label passes between two outer nodes.
    inner = max(min_radius, (2 * SPOKE_R + NODE_GAP) / (2 * math.sin(step)))
    outer = max(inner + 2 * SPOKE_R + NODE_GAP, LABEL_CLEAR / math.sin(step))
    return inner, outer


def _region_local(hubs: Sequence[NodeSpec], spokes: Sequence[NodeSpec]) -> _Local:
    nodes: list[tuple[NodeSpec, float, float, float, TextMark]] = []
    # Hubs: a column at the centre, each labelled underneath.
    for j, hub in enumerate(hubs):
        y = (j - (len(hubs) - 1) / 2) * HUB_STEP - FONT / 2
        label = TextMark(hub.short, 0.0, y + HUB_R + LABEL_GAP + FONT / 2, "middle")
        nodes.append((hub, 0.0, y, HUB_R, label))
    # How far from the centre the hubs and their labels reach (a label's far corner counts).
    hub_extent = max(
        (
            max(abs(y) + r, math.hypot(len(label.text) * CHAR_W / 2, abs(label.y) + FONT / 2))
            for _, _, y, r, label in nodes
        ),
        default=0.0,
    )
    if not spokes:
        return _Local(nodes, [], _half(nodes, []))

    # Spokes: one slot per spoke, and one before each account's cluster for its heading.
    slots: list[NodeSpec | tuple[str, str] | None] = []
    by_account: dict[tuple[str, str], list[NodeSpec]] = defaultdict(list)
    for spoke in spokes:
        by_account[(spoke.account_name, spoke.account_id)].append(spoke)
    for (account_name, account_id), members in sorted(by_account.items()):
        slots.append((account_name or account_id, account_id))
        ordered = sorted(members, key=lambda s: (s.display_name, s.key))
        slots.extend(ordered)
    two_rings = len(slots) > ONE_RING_MAX
    if two_rings and len(slots) % 2:
        slots.append(None)  # keeps inner and outer alternating all the way round
    min_radius = (hub_extent + SPOKE_R + NODE_GAP) if hubs else 2 * SPOKE_R + NODE_GAP
    inner, outer = _ring_radii(len(slots), min_radius)
    step = 2 * math.pi / len(slots)
    accounts: list[TextMark] = []
    for i, slot in enumerate(slots):
        theta = -math.pi / 2 + i * step  # from the top, clockwise (SVG's y points down)
        radius = outer if (outer is not None and i % 2) else inner
        if slot is None:
            continue
        if isinstance(slot, tuple):
            name, account_id = slot
            accounts.append(
                _radial(
                    truncate(name, ACCOUNT_CHARS),
                    theta,
                    radius - SPOKE_R,
                    title=f"Account {name} ({account_id})",
                    char_width=BOLD_CHAR_W,
                )
            )
            continue
        x, y = radius * math.cos(theta), radius * math.sin(theta)
        nodes.append((slot, x, y, SPOKE_R, _radial(slot.short, theta, radius + SPOKE_R + LABEL_GAP)))
    return _Local(nodes, accounts, _half(nodes, accounts))


def _half(nodes: Sequence[tuple[NodeSpec, float, float, float, TextMark]], accounts: Sequence[TextMark]) -> float:
    """Half the side of the square panel that holds every circle and label (so it grows with them)."""
    reach = [max(abs(x), abs(y)) + r for _, x, y, r, _ in nodes]
    for mark in [n[4] for n in nodes] + list(accounts):
        (x0, y0), (x1, y1) = mark.extent()
        reach.append(max(abs(x0), abs(y0), abs(x1), abs(y1)) + FONT / 2)
    return max([MIN_PANEL_HALF, *reach]) + PAD


def _moved(mark: TextMark, dx: float, dy: float) -> TextMark:
    return TextMark(
        mark.text, round(mark.x + dx, 1), round(mark.y + dy, 1), mark.anchor, mark.rotate, mark.title, mark.char_width
    )


def _segment_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def polyline_distance(p: tuple[float, float], points: Sequence[tuple[float, float]]) -> float:
    return min(_segment_distance(p, points[i], points[i + 1]) for i in range(len(points) - 1))


def _quadratic(
    a: tuple[float, float], c: tuple[float, float], b: tuple[float, float], samples: int = 20
) -> tuple[tuple[float, float], ...]:
    out = []
    for i in range(samples + 1):
        t = i / samples
        u = 1 - t
        out.append((u * u * a[0] + 2 * u * t * c[0] + t * t * b[0], u * u * a[1] + 2 * u * t * c[1] + t * t * b[1]))
    return tuple(out)


# Curves tried, in order, when the straight line runs through a node: the control point's offset
# from the midpoint, as a fraction of the edge's length, to one side then the other.
_BENDS = tuple(sign * step / 20 for step in range(1, 17) for sign in (1, -1))


def _route(
    a: PlacedNode, b: PlacedNode, nodes: Sequence[PlacedNode], width: float, height: float, first_bend: int
) -> tuple[str, tuple[tuple[float, float], ...]]:
    """A straight line from a to b, or the first curve that clears every other node and stays inside."""
    others = [(n.x, n.y, n.r) for n in nodes if n is not a and n is not b]
    ax, ay, bx, by = a.x, a.y, b.x, b.y
    length = math.hypot(bx - ax, by - ay) or 1.0
    nx, ny = -(by - ay) / length, (bx - ax) / length  # unit normal
    mx, my = (ax + bx) / 2, (ay + by) / 2

    def clearance(points: Sequence[tuple[float, float]]) -> float:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
            return -math.inf
        # Only nodes near the path's bounding box can be in its way.
        reach = HUB_R + EDGE_CLEARANCE
        left, right, top, bottom = min(xs) - reach, max(xs) + reach, min(ys) - reach, max(ys) + reach
        return min(
            (polyline_distance((x, y), points) - r for x, y, r in others if left <= x <= right and top <= y <= bottom),
            default=math.inf,
        )

    candidates: list[tuple[str, tuple[tuple[float, float], ...]]] = []
    if first_bend == 0:
        candidates.append((f"M{ax:g} {ay:g}L{bx:g} {by:g}", ((ax, ay), (bx, by))))
    for bend in _BENDS[max(0, first_bend - 1) :]:
        cx, cy = round(mx + nx * bend * length, 1), round(my + ny * bend * length, 1)
        candidates.append((f"M{ax:g} {ay:g}Q{cx:g} {cy:g} {bx:g} {by:g}", _quadratic((ax, ay), (cx, cy), (bx, by))))
    best, best_clearance = candidates[0], -math.inf
    for candidate in candidates:
        c = clearance(candidate[1])
        if c >= EDGE_CLEARANCE:
            return candidate
        if c > best_clearance:
            best, best_clearance = candidate, c
    return best


def _node_order(spec: NodeSpec) -> tuple[Any, ...]:
    return (spec.account_name, spec.account_id, spec.display_name, spec.key)


def layout(nodes: Iterable[NodeSpec], edges: Iterable[EdgeSpec]) -> Picture:
    """Where everything goes. Deterministic: the order of the inputs does not matter."""
    specs = {n.key: n for n in nodes}
    by_region: dict[str, list[NodeSpec]] = defaultdict(list)
    for spec in specs.values():
        by_region[spec.region].append(spec)

    # Each region drawn around its own centre, then packed into rows.
    locals_: list[tuple[str, _Local, int]] = []
    for region in sorted(by_region):
        members = sorted(by_region[region], key=_node_order)
        local = _region_local([m for m in members if m.is_hub], [m for m in members if not m.is_hub])
        locals_.append((region, local, len(members)))
    panels: list[Panel] = []
    placed: list[PlacedNode] = []
    account_labels: list[TextMark] = []
    x = y = MARGIN
    row_height = 0.0
    width = 0.0
    for region, local, count in locals_:
        side = 2 * local.half
        if x > MARGIN and x + side > MAX_ROW_WIDTH:
            x, y = MARGIN, y + row_height + PANEL_GAP
            row_height = 0.0
        panels.append(Panel(region, x, y, round(side, 1), round(side + TITLE_H, 1), count))
        cx, cy = x + local.half, y + TITLE_H + local.half
        for spec, nx, ny, r, label in local.nodes:
            placed.append(PlacedNode(spec, round(cx + nx, 1), round(cy + ny, 1), r, _moved(label, cx, cy)))
        account_labels.extend(_moved(mark, cx, cy) for mark in local.accounts)
        width = max(width, x + side + MARGIN)
        row_height = max(row_height, side + TITLE_H)
        x += side + PANEL_GAP
    height = y + row_height + MARGIN if locals_ else 0.0
    width = round(width, 1)
    height = round(height, 1)

    # Edges between drawn nodes only, in a fixed order; a pair's second edge is always curved.
    at = {n.spec.key: n for n in placed}
    drawn = sorted(
        (e for e in edges if e.source in at and e.target in at and e.source != e.target),
        key=lambda e: (_Z_ORDER.get(e.kind, 9), e.source, e.target, e.request_id, e.connection_id),
    )
    per_pair: dict[frozenset[str], int] = defaultdict(int)
    placed_edges = []
    for edge in drawn:
        pair = frozenset((edge.source, edge.target))
        d, points = _route(at[edge.source], at[edge.target], placed, width, height, per_pair[pair])
        per_pair[pair] += 1
        placed_edges.append(PlacedEdge(edge, at[edge.source], at[edge.target], d, points))
    return Picture(width, height, tuple(panels), tuple(placed), tuple(placed_edges), tuple(account_labels))
