"""Add complete, readable diagram interchange (BPMN DI) to BPMN files, so they open laid out in a modeller.

Run by process authors and the lead engineer over the council diagrams; the engine never imports it:
    python -m tools.bpmn_layout processes/*.bpmn          # (re)generate each file's DI in place
    python -m tools.bpmn_layout --check processes/*.bpmn  # exit 1 naming the files whose DI is missing or incomplete
Only the bpmndi:BPMNDiagram elements are regenerated, plus a bpmn:collaboration with one pool per process when
pools are needed (lanes, or several processes); every other byte of the file is kept. Columns are ranks (longest
path from the start events, loops drawn backwards), lanes are horizontal bands, boundary events sit on their
host's bottom edge, a sub-process's contents get a plane of their own, and each edge is the cheapest of many
orthogonal candidate routes. tests/test_diagram_interchange.py checks the result.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from itertools import pairwise, product
from pathlib import Path

from lxml import etree

BPMN, BPMNDI = "http://www.omg.org/spec/BPMN/20100524/MODEL", "http://www.omg.org/spec/BPMN/20100524/DI"
DC, DI = "http://www.omg.org/spec/DD/20100524/DC", "http://www.omg.org/spec/DD/20100524/DI"
DI_PREFIXES = {BPMNDI: "bpmndi", DC: "dc", DI: "di"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
SUBPROCESSES = {"subProcess", "transaction", "adHocSubProcess"}
ACTIVITIES = {
    "task",
    "userTask",
    "manualTask",
    "scriptTask",
    "serviceTask",
    "sendTask",
    "receiveTask",
    "businessRuleTask",
    "callActivity",
    *SUBPROCESSES,
}
ARTIFACTS = {"dataObjectReference": (36, 50), "dataStoreReference": (50, 50), "textAnnotation": (100, 30)}
ORIGIN, HEADER, MARGIN, POOL_GAP = (100, 60), 30, 40, 60  # pool and lane headers are 30 wide
COL_GAP, ROW_H, ROW_GAP, PAD_TOP, PAD_BOTTOM = 50, 80, 60, 60, 60  # a row holds an 80-high task
BEND, PER_PX, HIT, SOFT_HIT, OVERLAP, CROSS = 20, 0.05, 1000, 50, 60, 6  # what a route costs
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def size(el) -> tuple[int, int] | None:
    """Width and height of the shape of a drawable element, or None."""
    if not isinstance(el.tag, str) or etree.QName(el).namespace != BPMN:
        return None
    name = local(el)
    return (
        (36, 36)
        if name in EVENTS
        else (50, 50)
        if name in GATEWAYS
        else (100, 80)
        if name in ACTIVITIES
        else ARTIFACTS.get(name)
    )


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float
    cx = property(lambda self: self.x + self.w / 2)
    cy = property(lambda self: self.y + self.h / 2)
    right = property(lambda self: self.x + self.w)
    bottom = property(lambda self: self.y + self.h)

    def hit(self, p, r, pad=6) -> bool:
        """Does the axis-parallel segment p-r pass through this box grown by pad?"""
        return (
            min(p[0], r[0]) < self.x + self.w + pad
            and max(p[0], r[0]) > self.x - pad
            and min(p[1], r[1]) < self.y + self.h + pad
            and max(p[1], r[1]) > self.y - pad
        )

    def overlaps(self, b: Box) -> bool:
        return self.x < b.right and b.x < self.right and self.y < b.bottom and b.y < self.bottom

    def anchor(self, side: str) -> tuple[float, float]:
        return {
            "r": (self.right, self.cy),
            "l": (self.x, self.cy),
            "t": (self.cx, self.y),
            "b": (self.cx, self.bottom),
        }[side]


@dataclass
class Plane:
    """What one BPMNPlane draws: shapes (with extra BPMNShape attributes), edge waypoints and label bounds."""

    element: str
    shapes: dict[str, Box] = field(default_factory=dict)
    extra: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: dict[str, list] = field(default_factory=dict)
    labels: dict[str, Box] = field(default_factory=dict)


def label_size(text: str) -> tuple[int, int]:
    """An external label as bpmn-js wraps it: lines of up to ~15 characters of ~6px, 14px high."""
    lines = [""]
    for word in text.split():
        lines[-1:] = (
            [f"{lines[-1]} {word}".strip()] if len(lines[-1]) + len(word) < 15 or not lines[-1] else [lines[-1], word]
        )
    return max(map(len, lines)) * 6 + 4, 14 * len(lines)


def lanes_of(process) -> list[tuple[etree._Element, int]]:
    """(lane, depth) in document order, each lane before its child lanes."""

    def walk(lane_set, depth):
        for lane in lane_set.iterfind(q(BPMN, "lane")):
            yield lane, depth
            for child in lane.iterfind(q(BPMN, "childLaneSet")):
                yield from walk(child, depth + 1)

    return [pair for lane_set in process.iterfind(q(BPMN, "laneSet")) for pair in walk(lane_set, 0)]


def is_leaf(lane) -> bool:
    return lane.find(f"{q(BPMN, 'childLaneSet')}/{q(BPMN, 'lane')}") is None


def links_of(container, ids: set[str]) -> list[tuple[str, str, str]]:
    """(id, source, target) of the associations and data associations between this container's nodes."""
    links = [(a.get("id"), a.get("sourceRef"), a.get("targetRef")) for a in container.iterfind(q(BPMN, "association"))]
    for node in container:
        links += [
            (a.get("id"), (a.findtext(q(BPMN, "sourceRef")) or "").strip(), node.get("id"))
            for a in node.iterfind(q(BPMN, "dataInputAssociation"))
        ]
        links += [
            (a.get("id"), node.get("id"), (a.findtext(q(BPMN, "targetRef")) or "").strip())
            for a in node.iterfind(q(BPMN, "dataOutputAssociation"))
        ]
    return [link for link in links if link[0] and link[1] in ids and link[2] in ids]


class Layout:
    """One process or sub-process: columns by rank, rows inside horizontal bands (its leaf lanes, or one band)."""

    def __init__(self, container, leaves: list, x0: float, y0: float):
        self.nodes = {el.get("id"): el for el in container if size(el) and el.get("id")}
        self.flows = [
            (f.get("id"), f.get("sourceRef"), f.get("targetRef"), (f.get("name") or "").strip())
            for f in container.iterfind(q(BPMN, "sequenceFlow"))
            if f.get("sourceRef") in self.nodes and f.get("targetRef") in self.nodes
        ]
        self.host = {
            n: el.get("attachedToRef")
            for n, el in self.nodes.items()
            if local(el) == "boundaryEvent" and el.get("attachedToRef") in self.nodes
        }
        self.links = links_of(container, set(self.nodes))
        self.artifacts = [n for n, el in self.nodes.items() if local(el) in ARTIFACTS]
        self.flow_nodes = [n for n in self.nodes if n not in self.host and n not in self.artifacts]
        self._rank()
        self._rows(leaves)
        self._place(x0, y0, max(len(leaves), 1))
        self._attach()

    def _rank(self) -> None:
        """Longest path from the starts over forward flows; a back flow closes a cycle in a DFS from the starts."""
        succ = {n: [] for n in self.flow_nodes}
        for fid, s, t, _ in sorted(self.flows, key=lambda f: f[1] in self.host):  # normal flows before boundary ones
            if self.host.get(s, s) in succ and t in succ:
                succ[self.host.get(s, s)].append((t, fid))
        targets = {t for _, _, t, _ in self.flows}
        self.back, self.pre, post, state = set(), {}, [], {}

        def visit(n):
            state[n], self.pre[n] = 1, len(self.pre)
            for t, fid in succ[n]:
                if state.get(t) == 1:
                    self.back.add(fid)
                elif t not in state:
                    visit(t)
            state[n] = 2
            post.append(n)

        for n in [
            n for n in self.flow_nodes if local(self.nodes[n]) == "startEvent" or n not in targets
        ] + self.flow_nodes:
            if n not in state:
                visit(n)
        self.topo, self.rank = post[::-1], dict.fromkeys(self.flow_nodes, 0)
        for n in self.topo:
            for t, fid in succ[n]:
                self.rank[t] = self.rank[t] if fid in self.back else max(self.rank[t], self.rank[n] + 1)
        self.preds = {n: [] for n in self.nodes}  # forward predecessors (a boundary event's host), +1 row after one
        for fid, s, t, _ in self.flows:
            if fid not in self.back and t in self.rank:
                self.preds[t].append((self.host.get(s, s), int(s in self.host)))
        for _, a, b in self.links:  # an artifact sits below the node it is linked to
            for artifact, partner in ((a, b), (b, a)):
                if artifact in self.artifacts and partner in self.rank and not self.preds[artifact]:
                    self.rank[artifact] = self.rank[partner]
                    self.preds[artifact].append((partner, 1))
        self.rank.update({a: 0 for a in self.artifacts if a not in self.rank})

    def _rows(self, leaves) -> None:
        """Band: the node's lane, else its predecessor's. Row: the predecessor's (one lower after a boundary event)
        if that is free in the node's band and rank, else the next free one below."""
        lane_of = {
            (ref.text or "").strip(): i
            for i, lane in reversed(list(enumerate(leaves)))
            for ref in lane.iterfind(q(BPMN, "flowNodeRef"))
        }
        self.band, self.row, used = {}, {}, set()
        for n in self.topo + self.artifacts:
            self.band[n] = lane_of.get(n, next((self.band[p] for p, _ in self.preds[n] if p in self.band), 0))
        self.band.update({b: self.band[h] for b, h in self.host.items()})
        for n in sorted(self.flow_nodes, key=lambda n: (self.rank[n], self.pre[n])) + self.artifacts:
            row = min(
                (self.row[p] + bump for p, bump in self.preds[n] if p in self.row and self.band[p] == self.band[n]),
                default=0,
            )
            while (self.band[n], self.rank[n], row) in used:
                row += 1
            used.add((self.band[n], self.rank[n], row))
            self.row[n] = row

    def _place(self, x0: float, y0: float, bands: int) -> None:
        """Columns as wide as their widest shape; a host of several boundary events is widened to hold them."""
        sizes = {n: size(el) for n, el in self.nodes.items()}
        sizes.update(
            {h: (max(100, 50 * k + 10), 80) for h in self.host.values() if (k := list(self.host.values()).count(h)) > 1}
        )
        col_w = [36] * (max(self.rank.values(), default=0) + 1)
        for n, r in self.rank.items():
            col_w[r] = max(col_w[r], sizes[n][0])
        col_x = [x0 + sum(col_w[:r]) + COL_GAP * r for r in range(len(col_w))]
        self.right, rows = col_x[-1] + col_w[-1], [1] * bands
        for n, r in self.row.items():
            rows[self.band[n]] = max(rows[self.band[n]], r + 1)
        self.bands = [
            (
                y0 + sum(PAD_TOP + PAD_BOTTOM + c * ROW_H + (c - 1) * ROW_GAP for c in rows[:i]),
                PAD_TOP + PAD_BOTTOM + rows[i] * ROW_H + (rows[i] - 1) * ROW_GAP,
            )
            for i in range(bands)
        ]
        row_top = {
            (b, r): self.bands[b][0] + PAD_TOP + r * (ROW_H + ROW_GAP) for b in range(bands) for r in range(rows[b])
        }
        self.boxes = {}
        for n, r in self.row.items():
            (w, h), c = sizes[n], self.rank[n]
            self.boxes[n] = Box(col_x[c] + (col_w[c] - w) // 2, row_top[self.band[n], r] + (ROW_H - h) // 2, w, h)
        self.channels = [x - COL_GAP // 2 + d for x in [*col_x, self.right + COL_GAP] for d in (0, -10, 10, -20, 20)]
        self.corridors = [top + d for top, _ in self.bands for d in (12, 24)]
        self.corridors += [top + ROW_H + d for top in row_top.values() for d in (38, 48)]

    def _attach(self) -> None:
        """Boundary events along the host's bottom edge: the one going deepest leftmost, any going up rightmost."""
        for host in dict.fromkeys(self.host.values()):
            hb = self.boxes[host]

            def depth(b, hb=hb):
                y = min((self.boxes[t].cy for _, s, t, _ in self.flows if s == b), default=hb.bottom + ROW_GAP)
                return y < hb.bottom, -y

            events = sorted((b for b, h in self.host.items() if h == host), key=depth)
            for i, b in enumerate(events):
                self.boxes[b] = Box(hb.cx + (i - (len(events) - 1) / 2) * 50 - 18, hb.bottom - 18, 36, 36)

    def draw(self, plane: Plane) -> None:
        """Shapes, edges (short forward ones first) and labels of this container into the plane."""
        plane.shapes.update(self.boxes)
        for n, el in self.nodes.items():
            if local(el) in ("exclusiveGateway", *SUBPROCESSES):
                plane.extra[n] = {"isMarkerVisible": "true"} if local(el) in GATEWAYS else {"isExpanded": "false"}
        named = {
            n: el.get("name").strip()
            for n, el in self.nodes.items()
            if (el.get("name") or "").strip() and local(el) not in ACTIVITIES | {"textAnnotation"}
        }
        router = Router(
            self.boxes.values(),
            self.channels,
            self.corridors,
            [self._spots(n, text, plane)[0] for n, text in named.items() if n not in self.host],
        )
        for link_id, a, b in self.links:  # straight and dotted: drawn first, for the routes to keep off them
            router.add(plane.edges.setdefault(link_id, straight(self.boxes[a], self.boxes[b])))
        for fid, s, t, _ in sorted(self.flows, key=lambda f: (f[0] in self.back, self._distance(f[1], f[2]))):
            side = 0 if local(self.nodes[s]) in GATEWAYS else 8
            exits = {"b": 0} if s in self.host else {"r": 0, "b": side, "t": side}
            plane.edges[fid] = router.route(self.boxes[s], self.boxes[t], exits, {"l": 0, "t": 8, "b": 8})
        taken = list(self.boxes.values())  # a label keeps off shapes, other labels and edges where it can
        spots = [(n, self._spots(n, text, plane)) for n, text in named.items()]
        for n, boxes in spots + [(fid, flow_spots(name, plane.edges[fid])) for fid, _, _, name in self.flows if name]:
            plane.labels[n] = next(
                (
                    b
                    for b in boxes
                    if not any(b.overlaps(t) for t in taken)
                    and not any(b.hit(p, r, pad=0) for p, r, _ in router.segments)
                ),
                boxes[0],
            )
            taken.append(plane.labels[n])

    def _spots(self, n: str, text: str, plane: Plane) -> list[Box]:
        """Places for a node's label, best first: below an event, above a gateway, a boundary event's by its edge."""
        box, (w, h) = self.boxes[n], label_size(text)
        below, above = Box(box.cx - w // 2, box.bottom + 4, w, h), Box(box.cx - w // 2, box.y - 4 - h, w, h)
        left, right = Box(box.x - w - 2, box.y - h + 8, w, h), Box(box.right + 2, box.y - h + 8, w, h)
        if n not in self.host:
            return [above, below, left, right] if local(self.nodes[n]) in GATEWAYS else [below, above, right, left]
        path = next((plane.edges[f] for f, s, *_ in self.flows if s == n and f in plane.edges), [])
        x, y = path[1] if len(path) > 2 else (box.cx, box.bottom + 20 + h)
        return [
            Box(x + 6, y - 3 - h, w, h),
            Box(x - 6 - w, y - 3 - h, w, h),
            Box(x + 6, y + 3, w, h),
            Box(box.right + 2, box.bottom + 2, w, h),
            Box(box.x - w - 2, box.bottom + 2, w, h),
        ]

    def _distance(self, s: str, t: str) -> float:
        return abs(self.boxes[s].cx - self.boxes[t].cx) + abs(self.boxes[s].cy - self.boxes[t].cy)


def flow_spots(text: str, path: list) -> list[Box]:
    """Places for a flow's label: beside the start of each segment, then beside its middle."""
    (w, h), spots = label_size(text), []
    for at, (p, r) in product((0, 0.5), pairwise(path)):
        x, y = p[0] + (r[0] - p[0]) * at, p[1] + (r[1] - p[1]) * at
        if p[1] == r[1]:
            x = x + 6 if r[0] > p[0] else x - 6 - w
            spots += [Box(x, y - 3 - h, w, h), Box(x, y + 3, w, h)]
        else:
            y = y + 4 if r[1] > p[1] else y - 4 - h
            spots += [Box(x + 5, y, w, h), Box(x - 5 - w, y, w, h)]
    return spots


def straight(a: Box, b: Box) -> list[tuple[float, float]]:
    """An association: border to border, vertical when the boxes are stacked."""
    if b.y >= a.bottom or a.y >= b.bottom:
        return [a.anchor("b"), b.anchor("t")] if b.y >= a.bottom else [a.anchor("t"), b.anchor("b")]
    return [a.anchor("r"), b.anchor("l")] if b.x >= a.right else [a.anchor("l"), b.anchor("r")]


class Router:
    """Orthogonal routes: the cheapest candidate by bends, length, shapes crossed, labels crossed, edges met."""

    def __init__(self, boxes, channels, corridors, soft=()):
        self.boxes, self.soft, self.segments = list(boxes), list(soft), []
        self.channels, self.corridors = sorted(set(channels)), sorted(set(corridors))

    def route(self, src: Box, dst: Box, exits: dict[str, int], entries: dict[str, int]) -> list:
        candidates = []
        for (e, e_cost), (n, n_cost) in product(exits.items(), entries.items()):
            a, b = src.anchor(e), dst.anchor(n)
            for middle in self._middles(a, e, b, n):
                path = simplify([a, *middle, b])
                if valid(path, e, n):
                    candidates.append((e_cost + n_cost + BEND * (len(path) - 2) + PER_PX * length(path), path))
        best, best_cost = [src.anchor("r"), dst.anchor("l")], float("inf")
        for base, path in sorted(candidates):  # cheapest first; stop once none can beat the best
            if base >= best_cost:
                break
            cost = base + self._clashes(path, src, dst, best_cost - base)
            best, best_cost = (path, cost) if cost < best_cost else (best, best_cost)
        self.add(best)
        return best

    def add(self, path: list) -> None:
        """Later routes keep off this one: its segments, each with its extent (x1, x2, y1, y2)."""
        self.segments += [
            (u, v, (min(u[0], v[0]), max(u[0], v[0]), min(u[1], v[1]), max(u[1], v[1]))) for u, v in pairwise(path)
        ]

    def _middles(self, a, e, b, n):
        """Bend points: a Z through a channel between columns, an L, or a detour through a corridor between rows."""
        (ax, ay), (bx, by) = a, b
        near_a, near_b = [x for x in self.channels if 0 < x - ax < 100], [x for x in self.channels if 0 < bx - x < 100]
        if e == "r" and n == "l":
            yield from ([(x, ay), (x, by)] for x in self.channels)
            yield from ([(x1, ay), (x1, y), (x2, y), (x2, by)] for x1, y, x2 in product(near_a, self.corridors, near_b))
        elif e == "r":
            yield [(bx, ay)]
            yield from ([(x1, ay), (x1, y), (bx, y)] for x1, y in product(near_a, self.corridors))
        elif n == "l":
            yield [(ax, by)]
            yield from ([(ax, y), (x2, y), (x2, by)] for y, x2 in product(self.corridors, near_b))
        else:
            yield from ([(ax, y), (bx, y)] for y in self.corridors)

    def _clashes(self, path, src: Box, dst: Box, budget: float) -> float:
        """What the path runs into, counted until it costs more than the budget."""
        segments, cost = list(pairwise(path)), 0.0
        for (i, (p, r)), box in product(enumerate(segments), self.boxes):
            if box.hit(p, r) and not (box is src and i == 0 or box is dst and i == len(segments) - 1):
                cost += HIT
                if cost >= budget:
                    return cost
        for p, r in segments:
            x1, x2, y1, y2 = min(p[0], r[0]), max(p[0], r[0]), min(p[1], r[1]), max(p[1], r[1])
            near = [(u, v) for u, v, (a, b, c, d) in self.segments if a <= x2 and b >= x1 and c <= y2 and d >= y1]
            cost += SOFT_HIT * sum(box.hit(p, r, pad=0) for box in self.soft)
            cost += sum(OVERLAP if overlap(p, r, u, v) else CROSS if cross(p, r, u, v) else 0 for u, v in near)
            if cost >= budget:
                return cost
        return cost


def simplify(path: list) -> list:
    """Without repeated points and without points in the middle of a straight run."""
    out = []
    for p in path:
        if out and p == out[-1]:
            continue
        if len(out) >= 2 and (out[-2][0] == out[-1][0] == p[0] or out[-2][1] == out[-1][1] == p[1]):
            out.pop()
        out.append(p)
    return out


def valid(path: list, exit_side: str, entry_side: str) -> bool:
    """Orthogonal, leaving through the exit side and arriving through the entry side."""
    if len(path) < 2 or any(p[0] != r[0] and p[1] != r[1] for p, r in pairwise(path)):
        return False
    (ax, ay), (fx, fy), (lx, ly), (bx, by) = path[0], path[1], path[-2], path[-1]
    return (
        min(
            {"r": fx - ax, "b": fy - ay, "t": ay - fy}[exit_side],
            {"l": bx - lx, "t": by - ly, "b": ly - by}[entry_side],
        )
        >= 10
    )


def length(path: list) -> float:
    return sum(abs(p[0] - r[0]) + abs(p[1] - r[1]) for p, r in pairwise(path))


def overlap(p, r, u, v) -> bool:
    """Collinear segments sharing more than a point."""
    for axis in (0, 1):
        if p[axis] == r[axis] == u[axis] == v[axis]:
            o = 1 - axis
            return min(max(p[o], r[o]), max(u[o], v[o])) - max(min(p[o], r[o]), min(u[o], v[o])) > 1
    return False


def cross(p, r, u, v) -> bool:
    """A horizontal and a vertical segment crossing inside both."""
    if p[1] == r[1] and u[0] == v[0]:
        return min(p[0], r[0]) < u[0] < max(p[0], r[0]) and min(u[1], v[1]) < p[1] < max(u[1], v[1])
    return p[0] == r[0] and u[1] == v[1] and cross(u, v, p, r)


class Ids:
    """Fresh ids that clash with none in the document."""

    def __init__(self, root):
        self.used = {el.get("id") for el in root.iter(etree.Element) if el.get("id")}

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i + 1}", i + 1
        self.used.add(name)
        return name


def ensure_pools(root, ids: Ids) -> etree._Element | None:
    """Give every process a pool when pools are needed (lanes, or several processes); return a new collaboration."""
    processes = [p for p in root.iterfind(q(BPMN, "process")) if p.get("id")]
    collab = root.find(q(BPMN, "collaboration"))
    if collab is None and len(processes) < 2 and not any(lanes_of(p) for p in processes):
        return None
    created = collab is None
    if created:
        collab = etree.Element(q(BPMN, "collaboration"), id=ids(f"{processes[0].get('id')}_collaboration"))
        processes[0].addprevious(collab)
    pooled = {p.get("processRef") for p in collab.iterfind(q(BPMN, "participant"))}
    for process in (p for p in processes if p.get("id") not in pooled):
        pid = process.get("id")
        pool = etree.Element(
            q(BPMN, "participant"), id=ids(f"{pid}_pool"), name=process.get("name") or pid, processRef=pid
        )
        before = [c for c in collab if local(c) in ("documentation", "extensionElements", "participant")]
        pool.tail = before[-1].tail if before else collab.text
        before[-1].addnext(pool) if before else collab.insert(0, pool)
    return collab if created else None


def layout(root) -> list[Plane]:
    """The planes of the document: its collaboration (pools stacked) or its one process, then each sub-process."""
    processes = {p.get("id"): p for p in root.iterfind(q(BPMN, "process"))}
    collab = root.find(q(BPMN, "collaboration"))
    if collab is None:
        lays = [(Plane(pid), Layout(p, [], ORIGIN[0] + MARGIN, ORIGIN[1])) for pid, p in list(processes.items())[:1]]
        for plane, lay in lays:
            lay.draw(plane)
        return [plane for plane, _ in lays] + sub_planes([lay for _, lay in lays])
    plane, pools, y = Plane(collab.get("id")), [], ORIGIN[1]
    for part in collab.iterfind(q(BPMN, "participant")):
        process = processes.get(part.get("processRef"))
        lanes = lanes_of(process) if process is not None else []
        x0 = ORIGIN[0] + HEADER * (1 + max((d + 1 for _, d in lanes), default=0)) + MARGIN
        lay = Layout(process, [x for x, _ in lanes if is_leaf(x)], x0, y) if process is not None else None
        pools.append((part.get("id"), lay, lanes, y, sum(h for _, h in lay.bands) if lay else 100))
        y += pools[-1][-1] + POOL_GAP
    right = max((lay.right for _, lay, *_ in pools if lay), default=ORIGIN[0] + 400) + MARGIN
    for pool_id, lay, lanes, top, height in pools:
        plane.shapes[pool_id], plane.extra[pool_id] = (
            Box(ORIGIN[0], top, right - ORIGIN[0], height),
            {"isHorizontal": "true"},
        )
        draw_lanes(plane, lanes, lay, right)
    lays = [lay for _, lay, *_ in pools if lay]
    for lay in lays:
        lay.draw(plane)
    router = Router(
        [b for lay in lays for b in lay.boxes.values()],
        [],
        [t + h + POOL_GAP / 2 + d for _, _, _, t, h in pools[:-1] for d in (0, -10, 10)],
    )
    for flow in collab.iterfind(q(BPMN, "messageFlow")):  # leaving and entering vertically, between the pools
        src, dst = plane.shapes.get(flow.get("sourceRef")), plane.shapes.get(flow.get("targetRef"))
        if src and dst and flow.get("id"):
            down = dst.cy > src.cy
            plane.edges[flow.get("id")] = router.route(src, dst, {"b" if down else "t": 0}, {"t" if down else "b": 0})
    return [plane, *sub_planes(lays)]


def draw_lanes(plane: Plane, lanes: list, lay: Layout | None, right: float) -> None:
    """A lane spans the bands of its leaf lanes, inset by one header per level of nesting."""
    leaves = [lane for lane, _ in lanes if is_leaf(lane)]
    for i, (lane, depth) in enumerate(lanes):
        end = next((j for j in range(i + 1, len(lanes)) if lanes[j][1] <= depth), len(lanes))
        bands = [lay.bands[leaves.index(x)] for x, _ in lanes[i:end] if is_leaf(x)]
        x = ORIGIN[0] + HEADER * (1 + depth)
        plane.shapes[lane.get("id")] = Box(x, bands[0][0], right - x, bands[-1][0] + bands[-1][1] - bands[0][0])
        plane.extra[lane.get("id")] = {"isHorizontal": "true"}


def sub_planes(lays: list[Layout]) -> list[Plane]:
    """A sub-process is drawn collapsed; its contents go on a plane of their own (drill-down in bpmn-js)."""
    planes = []
    for lay in lays:
        for n, el in lay.nodes.items():
            if local(el) in SUBPROCESSES and any(size(child) for child in el):
                inner = Layout(el, [], ORIGIN[0] + MARGIN, ORIGIN[1])
                planes.append(Plane(n))
                inner.draw(planes[-1])
                planes += sub_planes([inner])
    return planes


def render(plane: Plane, ids: Ids, nsmap: dict) -> etree._Element:
    """The BPMNDiagram element of one plane."""
    diagram = etree.Element(q(BPMNDI, "BPMNDiagram"), nsmap=nsmap, id=ids(f"{plane.element}_diagram"))
    body = etree.SubElement(
        diagram, q(BPMNDI, "BPMNPlane"), id=ids(f"{plane.element}_plane"), bpmnElement=plane.element
    )
    for name, box in plane.shapes.items():
        shape = etree.SubElement(
            body, q(BPMNDI, "BPMNShape"), id=ids(f"{name}_di"), bpmnElement=name, **plane.extra.get(name, {})
        )
        bounds(shape, box, plane.labels.get(name))
    for name, points in plane.edges.items():
        edge = etree.SubElement(body, q(BPMNDI, "BPMNEdge"), id=ids(f"{name}_di"), bpmnElement=name)
        for x, y in points:
            etree.SubElement(edge, q(DI, "waypoint"), x=f"{x:g}", y=f"{y:g}")
        bounds(edge, None, plane.labels.get(name))
    return diagram


def bounds(parent, box: Box | None, label: Box | None) -> None:
    """dc:Bounds of the shape, then its BPMNLabel's (the order the schema wants)."""
    for b in (box, label):
        owner = parent if b is box else etree.SubElement(parent, q(BPMNDI, "BPMNLabel"))
        if b is not None:
            etree.SubElement(owner, q(DC, "Bounds"), x=f"{b.x:g}", y=f"{b.y:g}", width=f"{b.w:g}", height=f"{b.h:g}")


def rewrite(text: str, retry=True) -> str:
    """The document with its diagram interchange regenerated; every other byte kept where possible."""
    root = etree.fromstring(text.encode("utf-8"), PARSER)
    old = root.findall(q(BPMNDI, "BPMNDiagram"))
    old_tag = old and etree.QName(old[0]).text.replace(f"{{{BPMNDI}}}", f"{old[0].prefix}:" if old[0].prefix else "")
    for diagram in old:
        root.remove(diagram)
    ids, have = Ids(root), {ns: p for p, ns in root.nsmap.items() if p}
    collab = ensure_pools(root, ids)
    nsmap = {
        have.get(ns, prefix if prefix not in root.nsmap else f"{prefix}{i}"): ns
        for i, (ns, prefix) in enumerate(DI_PREFIXES.items(), 2)
    }
    diagrams = [render(plane, ids, nsmap) for plane in layout(root)]
    anchor = root.find(q(BPMN, "relationship"))
    for diagram in diagrams:
        root.append(diagram) if anchor is None else anchor.addprevious(diagram)
    try:
        spliced = splice(text, root, (old_tag, len(old)), collab, diagrams, nsmap)
        if canonical(etree.fromstring(spliced.encode("utf-8"), PARSER)) == canonical(root):
            return spliced
    except (ValueError, etree.XMLSyntaxError):
        pass
    # Not spliceable (e.g. pools added to the authors' collaboration): serialise it all, then splice once more.
    whole = f'<?xml version="1.0" encoding="UTF-8"?>\n{etree.tostring(root.getroottree(), encoding="unicode")}\n'
    return rewrite(whole, retry=False) if retry else whole


def canonical(root) -> bytes:
    clean = etree.fromstring(etree.tostring(root), etree.XMLParser(remove_blank_text=True))
    return etree.tostring(clean, method="c14n", exclusive=True)


def splice(text: str, root, old: tuple, collab, diagrams: list, nsmap: dict) -> str:
    """Insert the new elements into the original text (indented like it), leaving the rest of it alone."""
    nl, unit = "\r\n" if "\r\n" in text else "\n", (root.text or "\n  ").rpartition("\n")[2] or "  "

    def block(el) -> str:
        etree.indent(el, space=unit)
        head, sep, rest = etree.tostring(el, with_tail=False, encoding="unicode").partition(">")
        return nl.join(
            unit + line for line in (re.sub(r'\s+xmlns(:[\w.-]+)?="[^"]*"', "", head) + sep + rest).splitlines()
        )

    def qname(tag: str) -> str:
        return f"{root.prefix}:{tag}" if root.prefix else tag

    edits, (old_tag, count) = [], old
    new_ns = [f'xmlns:{p}="{ns}"' for p, ns in nsmap.items() if root.nsmap.get(p) != ns]
    if new_ns:  # declared on the root, as modellers do: one a line if the root's attributes are one a line
        start = re.search(rf"<{re.escape(qname('definitions'))}[\s>]", text).start()
        end = tag_end(text, start)
        indent = re.match(r"\s*", text[text.rfind("\n", 0, end) + 1 : end]).group()
        edits.append((end, end, "".join((nl + indent if "\n" in text[start:end] else " ") + d for d in new_ns)))
    if collab is not None:
        at = line_start(text, re.search(rf"<{re.escape(qname('process'))}[\s>/]", text).start())
        edits.append((at, at, block(collab) + nl))
    new_di = nl.join(block(d) for d in diagrams)
    if count:
        starts = [m.start() for m in re.finditer(rf"<{re.escape(old_tag)}[\s>]", text)]
        ends = [m.end() for m in re.finditer(rf"</{re.escape(old_tag)}\s*>", text)]
        if not len(starts) == len(ends) == count:
            raise ValueError("the old diagram interchange is not where expected")
        edits.append((line_start(text, starts[0]), ends[-1], new_di))
    else:
        at = line_start(text, text.rindex(f"</{qname('definitions')}"))
        edits.append((at, at, new_di + nl))
    for begin, finish, new in sorted(edits, reverse=True):
        text = text[:begin] + new + text[finish:]
    return text


def tag_end(text: str, start: int) -> int:
    """Index of the '>' closing the start tag at start (quoted '>' skipped)."""
    quote = None
    for i in range(start, len(text)):
        if text[i] in "\"'" and quote in (None, text[i]):
            quote = None if quote else text[i]
        elif text[i] == ">" and not quote:
            return i
    raise ValueError("unterminated start tag")


def line_start(text: str, index: int) -> int:
    """The start of index's line, which must hold only blanks before index."""
    begin = text.rfind("\n", 0, index) + 1
    if text[begin:index].strip():
        raise ValueError("element does not start its line")
    return begin


def missing(root) -> list[str]:
    """What the diagram interchange lacks: shapes, edges, edges with fewer than two waypoints."""
    shapes = {s.get("bpmnElement") for s in root.iter(q(BPMNDI, "BPMNShape"))}
    edges = {e.get("bpmnElement"): len(e.findall(q(DI, "waypoint"))) for e in root.iter(q(BPMNDI, "BPMNEdge"))}
    problems = [
        f"{el.get('id')} has no shape"
        for el in root.iter(etree.Element)
        if el.get("id") not in shapes and (size(el) or el.tag in (q(BPMN, "lane"), q(BPMN, "participant")))
    ]
    return problems + [
        f"{el.get('id')} has no edge with 2 waypoints"
        for el in root.iter(q(BPMN, "sequenceFlow"), q(BPMN, "messageFlow"), q(BPMN, "association"))
        if edges.get(el.get("id"), 0) < 2
    ]


def flow_order(root) -> dict[str, list[str]]:
    """SpiffWorkflow takes a node's outgoing flows (a gateway's default aside) in the order of their targets' y."""
    ys = {
        s.get("bpmnElement"): float(b.get("y"))
        for s in root.iter(q(BPMNDI, "BPMNShape"))
        if (b := s.find(q(DC, "Bounds"))) is not None
    }
    defaults = {el.get("default") for el in root.iter(etree.Element) if el.get("default")}
    targets: dict[str, list[str]] = {}
    for flow in root.iter(q(BPMN, "sequenceFlow")):
        if flow.get("id") not in defaults:
            targets.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    return {s: sorted(ts, key=lambda t: ys.get(t, 0.0)) for s, ts in targets.items() if len(ts) > 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bpmn_layout", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="BPMN files, rewritten in place")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file's DI is missing or incomplete"
    )
    args, status = parser.parse_args(argv), 0
    for path in args.files:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
            root = etree.fromstring(text.encode("utf-8"), PARSER)
            new = text if args.check else rewrite(text)
        except (OSError, ValueError, etree.XMLSyntaxError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            status = 2
            continue
        if args.check and missing(root):
            status, problems = max(status, 1), missing(root)
            print(
                f"{path}: diagram interchange incomplete: {'; '.join(problems[:5])}" + (" ..." if problems[5:] else "")
            )
        if args.check:
            continue
        before, after = flow_order(root), flow_order(etree.fromstring(new.encode("utf-8"), PARSER))
        for node in (n for n, order in after.items() if before.get(n) != order):
            print(
                f"{path}: note: SpiffWorkflow now takes the flows out of {node} towards {', '.join(after[node])} in that"
                " order (it orders them by the height of their targets)",
                file=sys.stderr,
            )
        if new != text:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(new)
        print(f"{path}: {'laid out' if new != text else 'unchanged'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
