"""Compare versions of a process, and move running PEPs to a newer version when that is safe.

Called by the process owners' pages (webui.versions), `pep migrate`, and replay (engine.replay), which
re-applies a recorded migration with `apply`. A move is safe when nothing the PEP has done or is doing
changes: every completed, ready or waiting step keeps its element, unchanged, in the new version.
Ready steps are re-planned on the new version; waiting timers are left as they are, so a running
deadline keeps its fire time (SpiffWorkflow's `reset_mask=READY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from .deploy import NS, DeploymentRejected, parse_xml
from .errors import EngineError
from .models import Deployment, Instance, ProcessDefinition
from .runtime import Engine
from .step import Step
from .vocabulary import Status

# How each part of a serialized task spec reads to a process owner.
ASPECTS = {
    "bpmn_name": "name",
    "lane": "lane",
    "script": "script",
    "event_definition": "event (timer or message)",
    "cond_task_specs": "conditions on its outgoing flows",
    "default_task_spec": "default flow",
    "outputs": "what comes after it",
    "typename": "kind of element",
    "cancel_activity": "whether it interrupts",
    "prescript": "script before",
    "postscript": "script after",
    "documentation": "documentation",
    "manual": "whether a person does it",
}
# Parts of a ready step that may change: the step is re-planned from the new version.
REPLANNED = {"inputs", "outputs"}


class MigrationRefused(EngineError):
    """The instance cannot move to that version without changing what it has done or is doing."""


@dataclass
class Check:
    """Whether one instance can move to a version, and if not, why (in the process owner's words)."""

    instance: Instance
    to_definition: ProcessDefinition
    reasons: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.reasons


def check(engine: Engine, instance: Instance, new_definition: ProcessDefinition) -> Check:
    """Say whether the instance can move to `new_definition` without changing anything done or under way."""
    result = Check(instance, new_definition)
    if instance.status != Status.RUNNING:
        result.reasons.append(f"the PEP is {instance.status}, not running")
    elif new_definition.process_id != instance.definition.process_id:
        result.reasons.append(f"version {new_definition.deployment.version} is a different process")
    elif new_definition.deployment.version <= instance.definition.deployment.version:
        result.reasons.append(f"the PEP is already on version {instance.definition.deployment.version}")
    else:
        result.reasons += _conflicts(engine, engine.load(instance), new_definition)
    return result


def candidates(engine: Engine, session: Session, newest: ProcessDefinition) -> list[Check]:
    """Every running instance of the process on an older version than `newest`, checked, oldest first."""
    instances = session.scalars(
        select(Instance)
        .join(ProcessDefinition)
        .join(Deployment)
        .where(
            ProcessDefinition.process_id == newest.process_id,
            Instance.status == Status.RUNNING,
            Deployment.version < newest.deployment.version,
        )
        .order_by(Instance.started_at, Instance.id)
    ).all()
    return [check(engine, instance, newest) for instance in instances]


def migrate(engine: Engine, session: Session, instance_id: int, new_definition_id: int, actor: str) -> Instance:
    """Move a running instance to another version of its process, recording it in the child's history."""
    with engine.instant():
        instance = session.get(Instance, instance_id)
        new = session.get(ProcessDefinition, new_definition_id)
        if instance is None or new is None:
            raise MigrationRefused(f"no instance {instance_id} or no version {new_definition_id}")
        verdict = check(engine, instance, new)
        if not verdict.safe:
            raise MigrationRefused(
                f"PEP {instance_id} cannot move to version {new.deployment.version}: " + "; ".join(verdict.reasons)
            )
        old = instance.definition
        workflow = apply(engine, engine.load(instance), old, new)
        instance.definition_id, instance.definition = new.id, new
        step = Step(engine, session, instance, workflow, actor)
        step.log(
            "instance_migrated",
            process_id=new.process_id,
            from_definition_id=old.id,
            to_definition_id=new.id,
            from_version=old.deployment.version,
            to_version=new.deployment.version,
        )
        engine.write(step)
        return instance


def apply(
    engine: Engine, workflow: BpmnWorkflow, old_definition: ProcessDefinition, new_definition: ProcessDefinition
) -> BpmnWorkflow:
    """Put the workflow onto the new version's spec; ready steps are re-planned, waiting ones kept."""
    conflicts = _conflicts(engine, workflow, new_definition)
    if conflicts:
        raise MigrationRefused(f"cannot move from {old_definition.id} to {new_definition.id}: " + "; ".join(conflicts))
    spec, subprocess_specs = engine.spec(new_definition)
    for flow, diff, _spec_diff, new_spec in _diffs(engine, workflow, spec, subprocess_specs):
        migrate_workflow(diff, flow, new_spec, reset_mask=TaskState.READY)
    workflow.subprocess_specs = subprocess_specs
    return workflow


def _diffs(engine: Engine, workflow: BpmnWorkflow, spec, subprocess_specs) -> list[tuple]:
    """(workflow, its diff, its spec diff, its new spec) for the top level and each running sub-process.

    A sub-process whose spec the new version lacks has no diff (None).
    """
    registry = engine.serializer.registry
    pairs = [(workflow, spec, workflow.spec)]
    pairs += [(sub, subprocess_specs.get(sub.spec.name), sub.spec) for sub in workflow.subprocesses.values()]
    diffs = []
    for flow, new_spec, old_spec in pairs:
        try:
            spec_diff = SpecDiff(registry, old_spec, new_spec) if new_spec is not None else None
        except RecursionError as exc:  # SpecDiff follows the diagram one nested call per element (engine.depth)
            raise MigrationRefused(
                f'"{flow.spec.name}" is too long for its versions to be compared '
                "(SpiffWorkflow follows it one nested call per element)"
            ) from exc
        diffs.append((flow, spec_diff and WorkflowDiff(flow, spec_diff), spec_diff, new_spec))
    return diffs


def _conflicts(engine: Engine, workflow: BpmnWorkflow, new_definition: ProcessDefinition) -> list[str]:
    """What the instance has done or holds that the new version removes or changes."""
    reasons = []
    try:
        diffs = _diffs(engine, workflow, *engine.spec(new_definition))
    except MigrationRefused as exc:
        return [str(exc)]
    for flow, diff, spec_diff, _new_spec in diffs:
        if diff is None:
            reasons.append(f'the sub-process "{flow.spec.name}" is running and the new version has no such sub-process')
        else:
            reasons += _task_conflicts(flow, diff, spec_diff)
    return list(dict.fromkeys(reasons))


def _task_conflicts(workflow, diff: WorkflowDiff, spec_diff: SpecDiff) -> list[str]:
    """Tasks that stay in the tree after migration whose element is gone, or changed where it matters.

    Ready tasks are re-planned, so the predicted steps under them go and only their own details count.
    Predicted steps elsewhere (LIKELY, MAYBE) are planned again from the new version when reached.
    """
    ready = workflow.get_tasks(state=TaskState.READY, skip_subprocesses=True)
    replanned = {t.id for r in ready for t in r if t is not r}
    removed = {t.id for t in diff.removed}
    reasons = []
    for task in workflow.get_tasks(skip_subprocesses=True):
        if task.id in replanned or task.parent is None:
            continue
        what = _describe_task(task)
        if task.id in removed:
            reasons.append(f"{what} is {_state_words(task)} and is not in the new version")
            continue
        if task.has_state(TaskState.PREDICTED_MASK | TaskState.CANCELLED):
            continue
        allowed = REPLANNED if task.state == TaskState.READY else {"inputs"}
        keys = [k for k in spec_diff.changed.get(task.task_spec, []) if k not in allowed]
        if keys and not task.task_spec.bpmn_id:  # SpiffWorkflow's own step around an element: only its shape counts
            if {"outputs", "typename"} & set(keys):
                owner = task.task_spec.name.rpartition(".")[0]
                reasons.append(f"the boundary events or joins around {owner} changed, and it is under way")
        elif keys:
            new_spec = spec_diff.alignment[task.task_spec]
            words = ", ".join(
                dict.fromkeys(
                    word
                    for k in keys
                    for word in (
                        _extension_words(task.task_spec, new_spec)
                        if k == "extensions"
                        else [ASPECTS.get(k, k.replace("_", " "))]
                    )
                )
            )
            reasons.append(f"{what} is {_state_words(task)} and its {words} changed")
    return reasons


def _extension_words(old, new) -> list[str]:
    """Which of an element's spiffworkflow extensions differ, named as in the diagram (form, due date...)."""
    before, after = old.extensions, new.extensions
    words = []
    for key in dict.fromkeys([*before, *after]):
        if key == "properties":
            props_before, props_after = before.get(key) or {}, after.get(key) or {}
            words += [
                PROPERTY_ASPECTS.get(p, p)
                for p in dict.fromkeys([*props_before, *props_after])
                if props_before.get(p) != props_after.get(p)
            ]
        elif before.get(key) != after.get(key):
            words.append(TEXT_ASPECTS.get(key, key))
    return words or ["extensions"]


def _describe_task(task) -> str:
    spec = task.task_spec
    if spec.bpmn_id:
        return f'"{spec.bpmn_name}" ({spec.bpmn_id})' if spec.bpmn_name else spec.bpmn_id
    return spec.name


def _state_words(task) -> str:
    if task.has_state(TaskState.COMPLETED):
        return "done"
    if task.has_state(TaskState.CANCELLED):
        return "withdrawn"
    if task.has_state(TaskState.READY | TaskState.STARTED):
        return "in progress"
    if task.has_state(TaskState.WAITING):
        return "waiting"
    if task.has_state(TaskState.FUTURE):
        return "next"
    return "planned"


# ---- what changed between two versions of a diagram ------------------------------------------

BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
SPIFF = NS["spiffworkflow"]
# Elements whose text is an expression, script or template, named as a process owner knows them.
TEXT_ASPECTS = {
    "conditionExpression": "condition",
    "timeDate": "timer",
    "timeDuration": "timer",
    "timeCycle": "timer",
    "script": "script",
    "preScript": "script before",
    "postScript": "script after",
    "instructionsForEndUser": "instructions",
    "messagePayload": "message payload",
    "messageVariable": "message variable",
    "documentation": "documentation",
    "text": "text",
}
PROPERTY_ASPECTS = {"formJsonSchemaFilename": "form", "dueDate": "due date", "validate": "validation"}
# References kept by both ends: a flow's sourceRef/targetRef says it; incoming/outgoing repeat it.
REPEATED = {"incoming", "outgoing", "flowNodeRef"}


@dataclass
class ElementChange:
    """One element of a diagram that was added, removed, changed or only moved."""

    id: str
    kind: str
    name: str
    changes: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (aspect, before, after)


@dataclass
class DiagramDiff:
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)
    moved: list[ElementChange] = field(default_factory=list)  # drawn elsewhere, meaning unchanged

    @property
    def same_meaning(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_diagrams(old_xml: str, new_xml: str, path: str = "diagram") -> DiagramDiff:
    """Compare two versions of a .bpmn file element by element (by id); layout-only moves apart."""
    old, new = _elements(old_xml, path), _elements(new_xml, path)
    result = DiagramDiff()
    for element_id, (node, aspects, layout) in new.items():
        if element_id not in old:
            result.added.append(_change(element_id, node))
            continue
        before, before_layout = old[element_id][1], old[element_id][2]
        changes = [
            (k, before.get(k), aspects.get(k))
            for k in dict.fromkeys([*before, *aspects])
            if before.get(k) != aspects.get(k)
        ]
        if changes:
            result.changed.append(_change(element_id, node, changes))
        elif layout != before_layout:
            result.moved.append(_change(element_id, node))
    result.removed = [_change(element_id, node) for element_id, (node, _a, _l) in old.items() if element_id not in new]
    return result


def _elements(xml: str, path: str) -> dict[str, tuple]:
    """Each semantic element with an id: (node, its aspects as text, its drawing)."""
    tree, errors = parse_xml(path, xml)
    if tree is None:
        raise DeploymentRejected(errors)
    root = tree.getroot()
    lanes = {
        (ref.text or "").strip(): lane.get("name") or lane.get("id")
        for lane in root.iterfind(".//bpmn:lane", NS)
        for ref in lane.iterfind("bpmn:flowNodeRef", NS)
    }
    drawings = {
        shape.get("bpmnElement"): etree.tostring(shape, method="c14n")
        for shape in root.iter(f"{{{BPMNDI}}}BPMNShape", f"{{{BPMNDI}}}BPMNEdge")
    }
    found = {}
    for node in root.iter(f"{{{NS['bpmn']}}}*"):
        element_id = node.get("id")
        local = etree.QName(node).localname
        if element_id and local != "definitions" and not local.endswith("EventDefinition"):
            aspects = _aspects(node)
            if element_id in lanes:
                aspects["lane"] = lanes[element_id]
            found[element_id] = (node, aspects, drawings.get(element_id))
    return found


def _aspects(node) -> dict[str, str]:
    """What an element says, by aspect: its attributes and the content it owns (not its own-id children)."""
    aspects = {name: value for name, value in node.attrib.items() if name != "id"}
    for child in _owned(node):
        local = etree.QName(child).localname
        if local.endswith("EventDefinition"):
            aspects["event"] = local.removesuffix("EventDefinition")
            aspects.update((name, value) for name, value in child.attrib.items() if name != "id")
        elif etree.QName(child).namespace == SPIFF and local == "property":
            name = child.get("name")
            aspects[PROPERTY_ASPECTS.get(name, name)] = child.get("value")
        elif local in TEXT_ASPECTS:
            aspects[TEXT_ASPECTS[local]] = (child.text or "").strip()
        elif local not in REPEATED and not len(child) and (child.text or "").strip():
            aspects[local] = child.text.strip()
        elif local not in REPEATED and child.attrib:
            aspects[local] = " ".join(f"{k}={v}" for k, v in sorted(child.attrib.items()))
    return {_readable(k): v for k, v in aspects.items()}


def _owned(node):
    """Descendants that belong to this element: stop at children that are elements in their own right."""
    for child in node.iterchildren(etree.Element):
        local = etree.QName(child).localname
        if etree.QName(child).namespace == NS["bpmn"] and child.get("id") and not local.endswith("EventDefinition"):
            continue
        yield child
        yield from _owned(child)


def _readable(key: str) -> str:
    local = etree.QName(key).localname if key.startswith("{") else key
    return {
        "attachedToRef": "attached to",
        "sourceRef": "from",
        "targetRef": "to",
        "cancelActivity": "interrupting",
        "calledElement": "calls",
        "messageRef": "message",
        "isExecutable": "executable",
    }.get(local, local)


def _change(element_id: str, node, changes=None) -> ElementChange:
    text = node.findtext("bpmn:text", default="", namespaces=NS).strip()  # a text annotation's words
    return ElementChange(element_id, etree.QName(node).localname, node.get("name") or text[:80], changes or [])
