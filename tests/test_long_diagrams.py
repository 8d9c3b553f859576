"""Long diagrams: a chain of thousands of elements deploys, runs to its end event with every task done,
is saved and replayed; what SpiffWorkflow still cannot run is refused at deploy, by element."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import clock as clocks
from engine import depth, migration
from engine.deploy import TOO_DEEP, Bundle, DeploymentRejected, deploy, parse_xml
from engine.history import events
from engine.models import Instance, OpenTask, ProcessDefinition
from engine.serializer import Serializer, state_digest

from .conftest import BASIC_BUNDLE, ROOT
from .helpers import sweep

NOTE_FORM = json.dumps({"type": "object", "properties": {"note": {"type": "string"}}})


class Diagram:
    """A process built element by element: script tasks add one to `count`; user tasks are the social
    worker's, with a one-field form."""

    def __init__(self, process_id: str):
        self.process_id, self.nodes, self.flows, self.users = process_id, [], [], []

    def add(self, kind: str, id_: str | None = None, **attributes) -> str:
        id_ = id_ or f"{kind}_{len(self.nodes)}"
        extra = "".join(f' {k}="{v}"' for k, v in attributes.items())
        if kind == "script":
            body = "<bpmn:script>count = count + 1</bpmn:script>"
            self.nodes.append(f'<bpmn:scriptTask id="{id_}" scriptFormat="python"{extra}>{body}</bpmn:scriptTask>')
        elif kind == "user":
            self.users.append(id_)
            self.nodes.append(
                f'<bpmn:userTask id="{id_}" name="Step {id_}"{extra}><bpmn:extensionElements><spiffworkflow:properties>'
                '<spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />'
                "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>"
            )
        else:
            self.nodes.append(f'<bpmn:{kind} id="{id_}"{extra} />')
        return id_

    def flow(self, source: str, target: str, condition: str | None = None) -> None:
        body = f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression>" if condition else ""
        self.flows.append(
            f'<bpmn:sequenceFlow id="flow_{len(self.flows)}" sourceRef="{source}" targetRef="{target}">'
            f"{body}</bpmn:sequenceFlow>"
        )

    def then(self, source: str, kind: str, **attributes) -> str:
        target = self.add(kind, **attributes)
        self.flow(source, target)
        return target

    def chain(self, source: str, kind: str, length: int) -> str:
        for _ in range(length):
            source = self.then(source, kind)
        return source

    def xml(self) -> str:
        lane = "".join(f"<bpmn:flowNodeRef>{u}</bpmn:flowNodeRef>" for u in self.users)
        return "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
                'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'id="long_definitions" targetNamespace="http://example.org/pep-test">',
                f'<bpmn:process id="{self.process_id}" name="Long {self.process_id}" isExecutable="true">',
                f'<bpmn:laneSet id="lanes"><bpmn:lane id="sw_lane" name="Social Worker">{lane}</bpmn:lane></bpmn:laneSet>'
                if self.users
                else "",
                *self.nodes,
                *self.flows,
                "</bpmn:process></bpmn:definitions>",
            ]
        )

    def bundle(self) -> Bundle:
        return Bundle({f"processes/{self.process_id}.bpmn": self.xml(), "forms/note.schema.json": NOTE_FORM})


def deploy_diagram(sessions, clock, diagram: Diagram):
    with clocks.using(clock), sessions.begin() as s:
        return deploy(s, diagram.bundle(), actor="owner@demo.test")[0]


def start(engine, sessions, process_id: str) -> int:
    with sessions.begin() as s:
        return engine.start(s, process_id, "C001", actor="sw@demo.test", data={"count": 0}).id


def open_tasks(sessions) -> list[OpenTask]:
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == "C001").order_by(OpenTask.spec_id)).all()


def test_a_chain_of_3000_script_tasks_deploys_and_runs_to_its_end_event(council, engine, clock):
    diagram = Diagram("long_chain")
    last = diagram.chain(diagram.add("startEvent", "begin"), "script", 3000)
    diagram.then(last, "endEvent", id_="finish")
    began = time.perf_counter()
    deploy_diagram(council, clock, diagram)
    deployed_in = time.perf_counter() - began
    instance_id = start(engine, council, "long_chain")
    ran_in = time.perf_counter() - began - deployed_in
    assert deployed_in < 20 and ran_in < 20, (deployed_in, ran_in)  # seconds, on a slow shared machine

    with council() as s:
        instance = s.get(Instance, instance_id)
        assert instance.status == "completed"
        assert engine.instance_data(s, instance_id)["count"] == 3000
        workflow = engine.load(instance)
        assert {t.state for t in workflow.tasks.values()} == {TaskState.COMPLETED}
        ran = [t.task_spec.bpmn_id for t in workflow.tasks.values() if t.task_spec.bpmn_id]
        assert ran[0] == "begin" and ran[-1] == "finish" and len(ran) == 3002
        assert workflow.last_task.task_spec.name == "End" and workflow.is_completed()
        # the saved state comes back as it was (the state is as deep as the chain)
        again = engine.serializer.state_from_dict(
            engine.serializer.state_to_dict(workflow), *engine.spec(instance.definition), engine.script_engine
        )
        assert state_digest(engine.serializer.state_to_dict(again)) == state_digest(instance.state)
        first = next(e for e in events(s, "C001") if e.kind == "instance_started")
        assert first.data["path"][:2] == ["begin", "script_1"] and len(first.data["path"]) == 3002


def test_user_tasks_past_depth_1000_open_and_complete_one_by_one(council, engine, clock):
    """SpiffWorkflow's task iterator stopped at depth 1,000: these tasks were never found, and the
    instance was reported completed with 1,100 tasks still to do."""
    diagram = Diagram("long_then_people")
    last = diagram.chain(diagram.add("startEvent", "begin"), "script", 1100)
    split = diagram.then(last, "parallelGateway", id_="split")
    join = diagram.add("parallelGateway", "join")
    for branch in ("ask_school", "ask_carer"):
        diagram.flow(split, diagram.add("user", branch))
        diagram.flow(branch, join)
    diagram.then(diagram.then(join, "user", id_="sign_off"), "endEvent", id_="finish")
    deploy_diagram(council, clock, diagram)
    instance_id = start(engine, council, "long_then_people")

    for expected in (["ask_carer", "ask_school"], ["ask_school"], ["sign_off"]):
        with council() as s:
            assert s.get(Instance, instance_id).status == "running"
        tasks = open_tasks(council)
        assert [t.spec_id for t in tasks] == expected
        with council.begin() as s:
            instance = engine.complete_task(s, tasks[0].id, "sw@demo.test", {"note": f"{tasks[0].spec_id} done"})
    assert instance.status == "completed" and open_tasks(council) == []
    with council() as s:
        assert engine.instance_data(s, instance_id)["count"] == 1100
        workflow = engine.load(s.get(Instance, instance_id))
        done = {
            t.task_spec.bpmn_id: t.state
            for t in workflow.tasks.values()
            if t.task_spec.bpmn_id and t.state != TaskState.CANCELLED
        }
        assert set(done.values()) == {TaskState.COMPLETED} and len(done) == 1100 + 7
        # the join waits on each branch; the branch that arrived first gives way to the other
        assert {t.task_spec.bpmn_id for t in workflow.tasks.values() if t.state == TaskState.CANCELLED} == {"join"}


def test_cancelling_an_instance_with_a_long_way_still_to_go(council, engine, clock):
    """Cancelling drops the 2,000 predicted tasks after the open one, branch by branch."""
    diagram = Diagram("long_to_cancel")
    first = diagram.then(diagram.add("startEvent", "begin"), "user", id_="first_step")
    diagram.then(diagram.chain(first, "script", 2000), "endEvent", id_="finish")
    deploy_diagram(council, clock, diagram)
    instance_id = start(engine, council, "long_to_cancel")
    with council() as s:
        assert len(engine.load(s.get(Instance, instance_id)).tasks) > 2000
    with council.begin() as s:
        instance = engine.cancel(s, instance_id, "sw@demo.test", reason="started by mistake")
    assert instance.status == "cancelled" and open_tasks(council) == []


def test_an_interrupting_timer_takes_a_long_process_down_its_other_path(council, engine, clock):
    """The boundary timer cancels the task it is attached to and drops the 2,000 tasks after it."""
    diagram = Diagram("long_with_deadline")
    first = diagram.then(diagram.add("startEvent", "begin"), "user", id_="first_step")
    diagram.then(diagram.chain(first, "script", 2000), "endEvent", id_="finish")
    diagram.nodes.append(
        '<bpmn:boundaryEvent id="overdue" attachedToRef="first_step"><bpmn:timerEventDefinition id="overdue_timer">'
        '<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"P7D"</bpmn:timeDuration>'
        "</bpmn:timerEventDefinition></bpmn:boundaryEvent>"
    )
    diagram.then(diagram.then("overdue", "user", id_="chase"), "endEvent", id_="chased")
    deploy_diagram(council, clock, diagram)
    start(engine, council, "long_with_deadline")
    assert [t.spec_id for t in open_tasks(council)] == ["first_step"]
    sweep(engine, council, "2026-03-10T09:00:00+00:00")
    assert [t.spec_id for t in open_tasks(council)] == ["chase"]
    with council.begin() as s:
        instance = engine.complete_task(s, open_tasks(council)[0].id, "sw@demo.test", {})
    assert instance.status == "completed"


def test_moving_a_long_process_to_a_new_version_is_refused_plainly(council, engine, clock):
    """SpiffWorkflow compares two versions one nested call per element: the move is refused, with why."""
    diagram = Diagram("long_versions")
    first = diagram.then(diagram.add("startEvent", "begin"), "user", id_="first_step")
    diagram.then(diagram.chain(first, "script", 1500), "endEvent", id_="finish")
    deploy_diagram(council, clock, diagram)
    instance_id = start(engine, council, "long_versions")
    diagram.nodes[-2] = diagram.nodes[-2].replace("count + 1", "count + 2")
    newest = deploy_diagram(council, clock, diagram)
    with council() as s:
        [check] = migration.candidates(engine, s, s.get(ProcessDefinition, newest.definitions[0].id))
        assert check.instance.id == instance_id and not check.safe
        assert check.reasons == [
            '"long_versions" is too long for its versions to be compared '
            "(SpiffWorkflow follows it one nested call per element)"
        ]


# ---- deploy ---------------------------------------------------------------------------------------


def rejected(sessions, clock, diagram: Diagram) -> list:
    with clocks.using(clock), sessions() as s, pytest.raises(DeploymentRejected) as caught:
        deploy(s, diagram.bundle(), actor="owner@demo.test")
    return caught.value.errors


def test_an_inclusive_gateway_merging_after_hundreds_of_elements_is_refused_by_name(council, clock):
    diagram = Diagram("long_inclusive")
    last = diagram.chain(diagram.add("startEvent", "begin"), "script", depth.MAX_INCLUSIVE_ANCESTORS)
    split, merge = diagram.then(last, "inclusiveGateway", id_="choose"), diagram.add("inclusiveGateway", "merge")
    for branch in ("left", "right"):
        diagram.flow(split, diagram.add("script", branch), condition="count &gt; 0")
        diagram.flow(branch, merge)
    diagram.then(merge, "endEvent", id_="finish")
    [error] = rejected(council, clock, diagram)
    assert (error.file, error.element_id) == ("processes/long_inclusive.bpmn", "merge")
    assert "inclusive gateway" in error.message and "call activity" in error.message and error.line


def test_a_diagram_too_deep_for_the_parser_is_refused_with_the_element_named(council, clock, monkeypatch):
    """Were an element's parsing to run out of recursion depth, deploy names it: no RecursionError."""
    monkeypatch.setattr(depth, "MAX_NESTING", 1_000_000)  # SpiffWorkflow's own, fully recursive parse
    diagram = Diagram("too_deep")
    diagram.then(diagram.chain(diagram.add("startEvent", "begin"), "script", 3000), "endEvent", id_="finish")
    [error] = rejected(council, clock, diagram)
    assert error.file == "processes/too_deep.bpmn" and error.message == TOO_DEEP
    assert error.element_id.startswith("script_")


# ---- the parser ---------------------------------------------------------------------------------


def specs(parser_class, paths: list[Path]) -> dict:
    """Every executable process of the files, parsed and serialized; inputs compared as sets."""
    parser, serializer = parser_class(validator=VALIDATOR), Serializer()
    for path in paths:
        tree, errors = parse_xml(str(path), path.read_text(encoding="utf-8"))
        assert not errors
        parser.add_bpmn_xml(tree, filename=path.name)
    parsed = {}
    for process_id in parser.get_process_ids():
        try:
            spec = parser.get_spec(process_id)
        except Exception:  # noqa: BLE001 - a non-executable process: not run, not compared
            continue
        dct = serializer.spec_to_dict(spec, parser.get_subprocess_specs(process_id))
        for process in (dct["spec"], *dct["subprocess_specs"].values()):
            for task_spec in process["task_specs"].values():
                task_spec["inputs"] = sorted(task_spec["inputs"])
        parsed[process_id] = dct
    return parsed


@pytest.mark.parametrize("nesting", [1, 3])
def test_parsing_in_passes_gives_the_specs_the_recursive_parse_gives(tmp_path, monkeypatch, nesting):
    """Every shipped diagram and test diagram, and a chain, with parsing deferred as much as it can be."""
    chain = Diagram("chain")
    chain.then(chain.chain(chain.add("startEvent", "begin"), "script", 200), "endEvent", id_="finish")
    (tmp_path / "chain.bpmn").write_text(chain.xml(), encoding="utf-8")
    paths = sorted((ROOT / "processes").glob("*.bpmn")) + sorted((BASIC_BUNDLE / "processes").glob("*.bpmn"))
    paths.append(tmp_path / "chain.bpmn")
    expected = specs(SpiffBpmnParser, paths)
    monkeypatch.setattr(depth, "MAX_NESTING", nesting)
    assert specs(depth.Parser, paths) == expected
