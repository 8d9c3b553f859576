"""Workflow (de)serialization with the spec kept apart: specs are stored once per deployment.

Called by the runtime to save and load instance state, and by deploy to store specs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from uuid import UUID

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


def state_digest(state: dict) -> str:
    """A digest of a serialized workflow state that two runs of the same inputs agree on.

    Keys are compared as the database stores them (as strings). Task ids are random, so each is replaced by its position in the task tree (depth first, in
    child order; sub-processes after their parent task); `last_state_change` is wall-clock time
    and is left out. Everything else (specs, states, data, timers' fire times) counts.
    """
    names: dict[str, str] = {}

    def number(tasks: dict, root: str) -> None:
        stack = [root]
        while stack:
            task_id = stack.pop()
            names[task_id] = f"#{len(names)}"
            stack.extend(reversed(tasks[task_id]["children"]))

    number(state["tasks"], state["root"])
    pending = dict(state.get("subprocesses") or {})
    while pending:
        ready = sorted((k for k in pending if k in names), key=lambda k: int(names[k][1:]))
        for key in ready or sorted(pending):
            number(pending[key]["tasks"], pending[key]["root"])
            del pending[key]

    def canon(value):
        if isinstance(value, dict):
            return {names.get(str(k), str(k)): canon(v) for k, v in value.items() if k != "last_state_change"}
        if isinstance(value, list):
            return [canon(v) for v in value]
        if isinstance(value, str):
            return names.get(value, value)
        return value

    body = json.dumps(canon(state), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
