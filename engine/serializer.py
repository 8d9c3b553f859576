"""Workflow (de)serialization with the spec kept apart: specs are stored once per deployment.

Called by the runtime to save and load instance state, and by deploy to store specs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Convert a workflow without its spec; restore it onto a spec the caller already holds."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        spec, subprocess_specs = dct.pop("spec"), dct.pop("subprocess_specs")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _registry():
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = StateOnlyWorkflowConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    return registry


class Serializer:
    """Turns specs and workflow states into JSON-ready dicts and back."""

    def __init__(self):
        self.registry = _registry()  # also what SpiffWorkflow's spec diff compares with (engine.migration)

    def spec_to_dict(self, spec, subprocess_specs) -> dict:
        convert = self.registry.convert
        return {"spec": convert(spec), "subprocess_specs": {k: convert(v) for k, v in subprocess_specs.items()}}

    def spec_from_dict(self, dct: dict):
        restore = self.registry.restore
        return restore(dct["spec"]), {k: restore(v) for k, v in dct["subprocess_specs"].items()}

    def state_to_dict(self, workflow: BpmnWorkflow) -> dict:
        return self.registry.convert(workflow)

    def state_from_dict(self, state: dict, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
        dct = dict(state, spec=spec, subprocess_specs=subprocess_specs)
        workflow = self.registry.restore(dct)
        workflow.script_engine = script_engine
        return workflow


DIGEST_VERSION = "2:"


def state_digest(state: dict) -> str:
    """A digest of a serialized workflow state that two runs of the same inputs agree on.

    Task ids are random, so each is replaced by its position in the task tree (depth first, in child
    order; sub-processes after their parent task); `last_state_change` is wall-clock time and is left
    out. Everything else (specs, states, data, timers' fire times) counts. Keys are compared as the
    database stores them (strings, sorted). Only the tree's structure is walked in Python; the task
    data, most of a state, goes through orjson.
    """
    names = _positions(state)

    def workflow(dct: dict) -> list:
        rest = {k: v for k, v in dct.items() if k not in ("tasks", "subprocesses")}
        tasks = sorted(dct["tasks"].values(), key=lambda t: names[t["id"]])
        return [
            _renamed(rest, names),
            [
                [
                    names[t["id"]],
                    names.get(t["parent"]),
                    [names[c] for c in t["children"]],
                    t["state"],
                    t["task_spec"],
                    t["triggered"],
                    _renamed(t["internal_data"], names),
                    t.get("data"),
                    t.get("delta"),
                ]
                for t in tasks
            ],
        ]

    subprocesses = state.get("subprocesses") or {}
    body = [workflow(state), sorted([names[k], workflow(v)] for k, v in subprocesses.items())]
    text = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)
    return DIGEST_VERSION + hashlib.sha256(text).hexdigest()


def state_matches(state: dict, recorded: str) -> bool:
    """Whether a state has the digest a step recorded (also digests recorded before version 2)."""
    digest = state_digest if recorded.startswith(DIGEST_VERSION) else _digest_v1
    return digest(state) == recorded


def _positions(state: dict) -> dict[str, int]:
    """Every task id of the state (sub-processes included) → its position in the task tree."""
    names: dict[str, int] = {}

    def number(tasks: dict, root: str) -> None:
        stack = [root]
        while stack:
            task_id = stack.pop()
            names[task_id] = len(names)
            stack.extend(reversed(tasks[task_id]["children"]))

    number(state["tasks"], state["root"])
    pending = dict(state.get("subprocesses") or {})
    while pending:
        ready = sorted((k for k in pending if k in names), key=names.__getitem__)
        for key in ready or sorted(pending):
            number(pending[key]["tasks"], pending[key]["root"])
            del pending[key]
    return names


def _renamed(value, names: dict[str, int]):
    """`value` with task ids (as keys or values, at any depth) replaced by their positions, keys as
    strings, and wall-clock `last_state_change` left out."""
    if isinstance(value, dict):
        return {_name(str(k), names): _renamed(v, names) for k, v in value.items() if k != "last_state_change"}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str):
        return _name(value, names)
    return value


def _name(text: str, names: dict[str, int]) -> str:
    position = names.get(text)
    return text if position is None else f"#{position}"


def _digest_v1(state: dict) -> str:
    """The digest steps recorded before version 2: the whole state walked in Python."""
    body = json.dumps(_renamed(state, _positions(state)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
