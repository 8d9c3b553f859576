"""The checks deploy makes of what a diagram's elements declare: lanes → known roles that see a
child's record (and tasks in a lane), fallbacks, each user task's form, notifications, the statutory
and overdue declarations, PP+ events (no release before a decision); and `lane_warnings`, the lanes
whose tasks may find nobody, which warn and do not refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from lxml import etree

from . import overdue, ppplus, statutory
from .bundle import HUMAN_TASKS, NS, Bundle, DeployError, DeployWarning, owner_id, parse_xml
from .roles import RoleDirectory
from .vocabulary import (
    FALLBACK_PROPERTY,
    FORM_PROPERTY,
    NOTIFY_PROPERTY,
    NOTIFY_SUBJECT_PROPERTY,
)


def _check_ppplus(path, process, bundle) -> list[DeployError]:
    """Each element's `ppplusEvent` with its expressions, and no release a path reaches before a decision
    (an element deciding, or a user task whose form asks for the decision)."""
    errors: list[DeployError] = []
    releases: list[str] = []  # the ids of the elements that release PP+, and of those that decide it
    guards: set[str] = set()
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{ppplus.EVENT_PROPERTY}']", NS):
        owner, properties = owner_id(prop), prop.getparent()

        def value(name, properties=properties):
            found = properties.find(f"spiffworkflow:property[@name='{name}']", NS)
            return found.get("value") if found is not None else None

        problem = ppplus.element_problem(
            prop.get("value"), value(ppplus.AMOUNT_PROPERTY), value(ppplus.DECISION_PROPERTY)
        )
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
        elif owner is None:  # held by no element with an id (not even its process's): nothing a path reaches
            continue
        elif prop.get("value") == "released":
            releases.append(owner)
        elif prop.get("value") == "decided":
            guards.add(owner)
    for task in process.iterfind(".//bpmn:userTask", NS):
        form = task.find(f".//spiffworkflow:property[@name='{FORM_PROPERTY}']", NS)
        content = bundle.files.get(f"forms/{form.get('value')}") if form is not None else None
        try:
            if content and ppplus.decides(json.loads(content)):
                guards.add(task.get("id"))
        except json.JSONDecodeError:
            continue  # said of the form itself
    if not releases:
        return errors
    graph: dict[str, list[str]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        graph.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    for node in process.iterfind(".//bpmn:boundaryEvent", NS):
        graph.setdefault(node.get("attachedToRef"), []).append(node.get("id"))
    for sub in process.iterfind(".//bpmn:subProcess", NS):
        graph.setdefault(sub.get("id"), []).extend(s.get("id") for s in sub.iterfind("bpmn:startEvent", NS))
    starts = [s.get("id") for s in process.iterfind("bpmn:startEvent", NS)]
    for owner in ppplus.unguarded_releases(graph, starts, releases, guards):
        errors.append(
            DeployError(
                path,
                owner,
                f'{ppplus.EVENT_PROPERTY} "released" can be reached without a PP+ '
                "decision: release only after the decision or sign-off the process requires "
                f'(an element declaring {ppplus.EVENT_PROPERTY} "decided", or a task whose form '
                'asks for the decision, "x-ppplus": "decision")',
            )
        )
    return errors


def _check_lanes(path, process, roles) -> list[DeployError]:
    errors, in_lane = [], set()
    for lane in process.iterfind(".//bpmn:lane", NS):
        if lane.find("bpmn:childLaneSet", NS) is not None:
            continue
        name = (lane.get("name") or "").strip()
        role = roles.resolve(name)
        if role is None:
            known = ", ".join(roles.labels())
            shown = f'"{name}"' if name else "(no name)"
            errors.append(
                DeployError(path, lane.get("id"), f"lane {shown} is not a known role (known: {known})", lane.sourceline)
            )
        elif not role.casework:
            errors.append(
                DeployError(
                    path,
                    lane.get("id"),
                    f"lane \"{name}\": the {role.label} sees no child's record, so cannot be given a child's work",
                    lane.sourceline,
                )
            )
        in_lane |= {(ref.text or "").strip() for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    for tag in HUMAN_TASKS:
        for task in process.iterfind(f".//bpmn:{tag}", NS):
            if not _in_a_lane(task, process, in_lane):
                errors.append(
                    DeployError(
                        path,
                        task.get("id"),
                        f"{tag} is not in any lane, so nobody could be assigned it",
                        task.sourceline,
                    )
                )
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{FALLBACK_PROPERTY}']", NS):
        name, role = (prop.get("value") or "").strip(), roles.resolve(prop.get("value"))
        if role is None:
            errors.append(DeployError(path, owner_id(prop), f'fallback: "{name}" is not a known role', prop.sourceline))
        elif not role.casework:
            errors.append(
                DeployError(
                    path,
                    owner_id(prop),
                    f"fallback: the {role.label} sees no child's record, so cannot be given a child's work",
                    prop.sourceline,
                )
            )
    return errors


def lane_warnings(bundle: Bundle, roles: RoleDirectory, paths: Iterable[str] | None = None) -> list[DeployWarning]:
    """The lanes of the bundle's diagrams (of `paths`, when given) whose tasks may find nobody: a child's
    case team may name nobody for the lane's role, which has no pool, and neither has any fallback after
    it (config/roles.yaml, or the task's own `fallback`). Such a task waits on the VS Administrator's
    "needs a person" list. Deploying goes ahead: these are warnings."""
    warnings = []
    for path in bundle.bpmn_files():
        if paths is not None and path not in paths:
            continue
        tree, _problems = parse_xml(path, bundle.files[path])  # deploy reports them
        if tree is None:
            continue
        for process in tree.getroot().iterfind("bpmn:process", NS):
            warnings += _lanes_with_nobody(path, process, roles)
    return warnings


def _lanes_with_nobody(path, process, roles) -> list[DeployWarning]:
    lanes = [lane for lane in process.iterfind(".//bpmn:lane", NS) if lane.find("bpmn:childLaneSet", NS) is None]
    lane_of = {(ref.text or "").strip(): lane for lane in lanes for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    unheld: dict[int, tuple[list[str], list[str]]] = {}  # lane → tasks, the roles they try
    for task in process.iter(*(f"{{{NS['bpmn']}}}{tag}" for tag in HUMAN_TASKS)):
        node = task
        while node is not None and node is not process and node.get("id") not in lane_of:
            node = node.getparent()
        lane = lane_of.get(node.get("id")) if node is not None else None
        role = roles.resolve(lane.get("name")) if lane is not None else None
        if role is None:
            continue  # the lane checks report it
        prop = task.find(f".//spiffworkflow:property[@name='{FALLBACK_PROPERTY}']", NS)
        fallback = prop.get("value") if prop is not None else None
        if roles.may_have_nobody(role, fallback):
            tasks, tried = unheld.setdefault(lanes.index(lane), ([], []))
            tasks.append(task.get("id"))
            tried += [r.label for r in roles.fallbacks(role, fallback) if r.label not in tried]
    warnings = []
    for index, (tasks, tried) in sorted(unheld.items()):
        lane = lanes[index]
        warnings.append(
            DeployWarning(
                path,
                lane.get("id"),
                f'lane "{lane.get("name").strip()}" may have nobody: for a child whose case team names no '
                f'{" or ".join(tried)}, {", ".join(tasks)} would wait on the VS Administrator\'s "needs a person" list '
                f"(give the role a fallback in config/roles.yaml, or the task a {FALLBACK_PROPERTY} property)",
                lane.sourceline,
            )
        )
    return warnings


def _in_a_lane(node, process, in_lane: set[str]) -> bool:
    """A node is in a lane itself, or through the embedded sub-process it sits in."""
    while node is not None and node is not process:
        if node.get("id") in in_lane:
            return True
        node = node.getparent()
    return False


def _check_human_tasks(path, process, bundle) -> list[DeployError]:
    errors = []
    for task in process.iterfind(".//bpmn:userTask", NS):
        prop = task.find(f".//spiffworkflow:property[@name='{FORM_PROPERTY}']", NS)
        form = prop.get("value") if prop is not None else None
        if not form:
            errors.append(
                DeployError(path, task.get("id"), f"userTask names no form (property {FORM_PROPERTY})", task.sourceline)
            )
        elif f"forms/{form}" not in bundle.files:
            errors.append(DeployError(path, task.get("id"), f'form "{form}" is not in forms/', task.sourceline))
    return errors


def _check_notifications(path, process, roles) -> list[DeployError]:
    errors = []
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{NOTIFY_PROPERTY}']", NS):
        owner = owner_id(prop)
        names = [n.strip() for n in (prop.get("value") or "").split(",") if n.strip()]
        if not names:
            errors.append(DeployError(path, owner, "notify names no role", prop.sourceline))
        for name in names:
            role = roles.resolve(name)
            if role is None:
                errors.append(DeployError(path, owner, f'notify: "{name}" is not a known role', prop.sourceline))
            elif not role.casework:
                errors.append(
                    DeployError(
                        path,
                        owner,
                        f"notify: the {role.label} sees no child's record, so cannot be told of a child's PEP",
                        prop.sourceline,
                    )
                )
        properties = prop.getparent()
        if properties.find(f"spiffworkflow:property[@name='{NOTIFY_SUBJECT_PROPERTY}']", NS) is None:
            errors.append(
                DeployError(path, owner, f"notify needs a {NOTIFY_SUBJECT_PROPERTY} property", prop.sourceline)
            )
    return errors


def _check_statutory(path, process, roles) -> list[DeployError]:
    """The statutory declarations (engine/statutory.py) and the overdue policy's per-task overrides
    (engine/overdue.py): known events, a start event's `answers` with its `answersDate`, known roles."""
    errors = []

    def each(name):
        for prop in process.iterfind(f".//spiffworkflow:property[@name='{name}']", NS):
            yield prop, prop.get("value"), owner_id(prop)

    for prop, value, owner in each(statutory.STATUTORY_EVENT_PROPERTY):
        problem = statutory.declared_event_problem(value)
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
    for prop, value, owner in each(statutory.ANSWERS_PROPERTY):
        node = process.find(f".//*[@id='{owner}']")
        if node is None or etree.QName(node).localname != "startEvent" or node.getparent() is not process:
            errors.append(
                DeployError(
                    path, owner, f"{statutory.ANSWERS_PROPERTY} belongs on the process's start event", prop.sourceline
                )
            )
            continue
        date = node.find(f".//spiffworkflow:property[@name='{statutory.ANSWERS_DATE_PROPERTY}']", NS)
        problem = statutory.answers_problem(value, date.get("value") if date is not None else None)
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
    for prop, value, owner in each(overdue.OVERDUE_PROPERTY):
        if value != overdue.NONE:
            errors.append(
                DeployError(
                    path,
                    owner,
                    f'{overdue.OVERDUE_PROPERTY} "{value or ""}": the only value is '
                    f'"{overdue.NONE}" (the diagram draws this task\'s own timers)',
                    prop.sourceline,
                )
            )
    for prop, value, owner in each(overdue.ESCALATE_PROPERTY):
        if (value or "").strip().lower() == overdue.NONE:
            continue
        role = roles.resolve(value)
        if role is None:
            errors.append(
                DeployError(
                    path, owner, f'{overdue.ESCALATE_PROPERTY}: "{value or ""}" is not a known role', prop.sourceline
                )
            )
        elif not role.casework:
            errors.append(
                DeployError(
                    path,
                    owner,
                    f"{overdue.ESCALATE_PROPERTY}: the {role.label} sees no child's "
                    "record, so cannot be told of a child's overdue step",
                    prop.sourceline,
                )
            )
    return errors
