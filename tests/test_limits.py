"""A hostile or careless diagram cannot take the service down: every piece of diagram code runs under a
time budget and size limits; a step that goes past one is rolled back whole, recorded as an incident
naming the process, the element and the limit, and the sweep goes on to other children."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from engine import clock as clocks
from engine import limits
from engine.deploy import Bundle, DeploymentRejected, deploy
from engine.errors import EngineError, ProcessFault
from engine.models import Event, Incident, Instance, Notification, OpenTask
from tests.helpers import sweep

FAST = limits.Limits(evaluation_seconds=0.3, step_seconds=0.6)
NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
FORM = '{"type": "object", "properties": {"note": {"type": "string"}}}'


@pytest.fixture(autouse=True)
def fast_limits():
    """Budgets of a fraction of a second, so that each hostile case stops quickly."""
    with limits.using(FAST):
        yield


def after_a_day(body: str, flows: str = "", lane: str = "") -> str:
    """A process that waits a day (so the sweep runs it), then runs `body` (elements whose first is
    `hostile`, the last flowing on to `done`)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/pep-test">
  <bpmn:process id="hostile_process" name="Hostile process" isExecutable="true">
    {lane}
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_a_day" />
    <bpmn:intermediateCatchEvent id="wait_a_day" name="Wait a day">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="wait_timer">
        <bpmn:timeDate xsi:type="bpmn:tFormalExpression">add_days(1)</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_a_day" targetRef="hostile" />
    {body}
    {flows}
    <bpmn:endEvent id="done"><bpmn:incoming>f_end</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
  <bpmn:process id="healthy_process" name="Healthy process" isExecutable="true">
    <bpmn:startEvent id="h_start"><bpmn:outgoing>h1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="h1" sourceRef="h_start" targetRef="h_wait" />
    <bpmn:intermediateCatchEvent id="h_wait" name="Wait a day">
      <bpmn:incoming>h1</bpmn:incoming><bpmn:outgoing>h2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="h_timer">
        <bpmn:timeDate xsi:type="bpmn:tFormalExpression">add_days(1)</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="h2" sourceRef="h_wait" targetRef="h_script" />
    <bpmn:scriptTask id="h_script" name="Count"><bpmn:incoming>h2</bpmn:incoming><bpmn:outgoing>h3</bpmn:outgoing>
      <bpmn:script>counted = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="h3" sourceRef="h_script" targetRef="h_done" />
    <bpmn:endEvent id="h_done"><bpmn:incoming>h3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


def script(code: str) -> str:
    return f"""<bpmn:scriptTask id="hostile" name="Hostile script"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f_end</bpmn:outgoing><bpmn:script>{code}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""


def condition(expression: str) -> str:
    return f"""<bpmn:exclusiveGateway id="hostile" name="Hostile condition" default="f_other">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_yes</bpmn:outgoing><bpmn:outgoing>f_other</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_yes" sourceRef="hostile" targetRef="join">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{expression}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_other" sourceRef="hostile" targetRef="join" />
    <bpmn:exclusiveGateway id="join"><bpmn:incoming>f_yes</bpmn:incoming><bpmn:incoming>f_other</bpmn:incoming>
      <bpmn:outgoing>f_end</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_end" sourceRef="join" targetRef="done" />"""


def timer(kind: str, expression: str) -> str:
    return f"""<bpmn:intermediateCatchEvent id="hostile" name="Hostile timer">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_end</bpmn:outgoing>
      <bpmn:timerEventDefinition id="hostile_timer">
        <bpmn:{kind} xsi:type="bpmn:tFormalExpression">{expression}</bpmn:{kind}>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""


def notification(subject: str) -> str:
    return f"""<bpmn:intermediateThrowEvent id="hostile" name="Hostile notice">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="notify" value="VS Head" />
        <spiffworkflow:property name="notifySubject" value="{subject}" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_end</bpmn:outgoing>
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""


def loop_without_wait() -> str:
    return """<bpmn:scriptTask id="hostile" name="Go round"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:incoming>f_back</bpmn:incoming><bpmn:outgoing>f_check</bpmn:outgoing>
      <bpmn:script>rounds = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f_check" sourceRef="hostile" targetRef="again" />
    <bpmn:exclusiveGateway id="again" default="f_back"><bpmn:incoming>f_check</bpmn:incoming>
      <bpmn:outgoing>f_back</bpmn:outgoing><bpmn:outgoing>f_end</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_back" sourceRef="again" targetRef="hostile" />
    <bpmn:sequenceFlow id="f_end" sourceRef="again" targetRef="done">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">rounds &gt; 1</bpmn:conditionExpression>
    </bpmn:sequenceFlow>"""


def many_instances(count: str) -> str:
    return f"""<bpmn:scriptTask id="hostile" name="One each"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f_end</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics isSequential="false">
        <bpmn:loopCardinality>{count}</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>one = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""


HOSTILE = {
    "an endless script": (script("while True:\n    n = 1"), "time"),
    "a huge power in a condition": (condition("10 ** (10 ** 9) &gt; 0"), "size"),
    "a huge repetition": (script("padding = 'x' * 10 ** 11"), "size"),
    "a comprehension over a huge range": (script("numbers = [x for x in range(10 ** 10)]"), "size"),
    "nested comprehensions that never end": (
        script("pairs = sum(1 for x in range(10 ** 6) for y in range(10 ** 6))"),
        "time",
    ),
    "exponential recursion": (script("def f(n):\n    return f(n - 1) + f(n - 1) if n else 1\nresult = f(60)"), "time"),
    "values doubled until they fill memory": (script("s = 'abc'\nfor i in range(64):\n    s = s + s"), "size"),
    "a huge timer expression": (timer("timeDate", "str([x for x in range(10 ** 10)])"), "size"),
    "an endless timer expression": (
        timer("timeDuration", "str(sum(1 for x in range(10 ** 6) for y in range(10 ** 6)))"),
        "time",
    ),
    "a computed cycle of no interval": (timer("timeCycle", "'R/' + 'PT0S'"), "time"),
    "a notification template that loops for ever": (
        notification("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        "time",
    ),
    "a notification template with a huge power": (notification("{{ 10 ** (10 ** 10) }}"), "size"),
    "a loop with no wait in it": (loop_without_wait(), "steps"),
    "a huge multi-instance count": (many_instances("10 ** 6"), "size"),
    "a day count that never ends": (timer("timeDate", "working_days(10 ** 9)"), "time"),
}


def deploy_xml(council, xml: str, forms: dict[str, str] | None = None):
    bundle = Bundle({"processes/hostile.bpmn": xml, **(forms or {})})
    with council.begin() as s:
        return deploy(s, bundle, actor="owner@demo.test")[0]


@contextmanager
def stopped_within(seconds: float):
    began = time.monotonic()
    yield
    assert time.monotonic() - began < seconds


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_step_stops_within_its_budget_becomes_an_incident_and_the_sweep_goes_on(case, council, engine):
    body, limit = HOSTILE[case]
    deploy_xml(council, after_a_day(body))
    with council.begin() as s:
        hostile = engine.start(s, "hostile_process", "C001").id
        healthy = engine.start(s, "healthy_process", "C002").id
    with council() as s:
        before = s.scalar(select(func.count()).select_from(Event).where(Event.child_id == "C001"))
        state_before = s.get(Instance, hostile).state
    with stopped_within(10):
        result = sweep(engine, council, "2026-03-04T09:00:00+00:00")
    assert result.incidents == [hostile]
    with council() as s:
        assert s.get(Instance, healthy).status == "completed"  # the other child's timer still fired
        instance = s.get(Instance, hostile)
        assert instance.state == state_before and instance.status == "running"  # nothing of the step applied
        incident = s.scalars(select(Incident)).one()
        assert incident.instance_id == hostile
        assert "hostile_process" in incident.message
        assert "element hostile" in incident.message or (limit == "steps" and "element again" in incident.message)
        assert f"{limit} limit" in incident.message
        events = s.scalars(select(Event.kind).where(Event.child_id == "C001").order_by(Event.seq)).all()
        assert len(events) == before + 1 and events[-1] == "incident"  # the incident, and nothing else
        told = s.scalars(select(Notification).where(Notification.kind == "incident")).one()
        assert told.role_key == "vs_administrator" and f"incident {incident.id}" in told.subject
        assert "hostile_process for Alex Example" in told.subject


def test_a_hostile_check_on_an_answer_refuses_the_submission_plainly_and_keeps_the_instance(council, engine):
    body = """<bpmn:userTask id="hostile" name="Write a note">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />
        <spiffworkflow:property name="validate" value="{'note': 'x'} if sum(1 for x in range(10 ** 6) for y in range(10 ** 6)) else {}" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_end</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""
    lane = """<bpmn:laneSet id="lanes"><bpmn:lane id="sw_lane" name="Social Worker">
      <bpmn:flowNodeRef>hostile</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"""
    deploy_xml(council, after_a_day(body, lane=lane), {"forms/note.schema.json": FORM})
    with council.begin() as s:
        instance_id = engine.start(s, "hostile_process", "C001").id
    sweep(engine, council, "2026-03-04T09:00:00+00:00")
    with council() as s:
        task = s.scalars(select(OpenTask)).one()
        version = s.get(Instance, instance_id).version
    with stopped_within(10), pytest.raises(ProcessFault) as caught, council.begin() as s:
        engine.complete_task(s, task.id, "sw@demo.test", {"note": "hello"})
    fault = caught.value
    assert (fault.process_id, fault.element_id, fault.limit, fault.instance_id) == (
        "hostile_process",
        "hostile",
        "time",
        instance_id,
    )
    with council.begin() as s:
        engine.record_fault(s, fault, "task")
    with council() as s:
        assert s.get(Instance, instance_id).version == version and s.get(OpenTask, task.id) is not None
        incident = s.scalars(select(Incident)).one()
        assert incident.source == "task" and "time limit" in incident.message
        assert s.get(Instance, instance_id).next_timer_at is None or True  # a person's step pauses nothing


def test_an_assert_in_a_script_still_refuses_the_answers_in_the_diagrams_words(council, engine):
    deploy_xml(council, after_a_day(script("assert False, 'The meeting must be on a school day'")))
    with council.begin() as s:
        engine.start(s, "hostile_process", "C001")
    result = sweep(engine, council, "2026-03-04T09:00:00+00:00")
    with council() as s:
        assert "The meeting must be on a school day" in s.scalars(select(Incident.message)).one()
    assert len(result.incidents) == 1


def test_instructions_that_cannot_be_shown_leave_the_task_doable_and_tell_the_virtual_school(council, engine):
    body = """<bpmn:userTask id="hostile" name="Write a note">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>{{ 10 ** (10 ** 10) }}</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />
        </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_end</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""
    lane = """<bpmn:laneSet id="lanes"><bpmn:lane id="sw_lane" name="Social Worker">
      <bpmn:flowNodeRef>hostile</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"""
    with stopped_within(5):  # Jinja does not fold the power while compiling
        deploy_xml(council, after_a_day(body, lane=lane), {"forms/note.schema.json": FORM})
    with council.begin() as s:
        engine.start(s, "hostile_process", "C001")
    sweep(engine, council, "2026-03-04T09:00:00+00:00")
    with council() as s:
        task_id = s.scalars(select(OpenTask.id)).one()
    for _ in range(2):  # seen twice: one incident
        with stopped_within(5), council.begin() as s:
            view = engine.task_view(s, task_id, "sw@demo.test")
        assert view["instructions"] == "" and view["instructions_fault"].limit == "size"
    with council() as s:
        assert s.scalars(select(Incident.source)).all() == ["instructions"]
    with council.begin() as s:
        engine.complete_task(s, task_id, "sw@demo.test", {"note": "done anyway"})


def test_a_hostile_start_leaves_no_instance_and_an_incident_without_one(council, engine):
    body = script("while True:\n    n = 1").replace(
        "<bpmn:incoming>f2</bpmn:incoming>", "<bpmn:incoming>f0</bpmn:incoming>"
    )
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/pep-test">
  <bpmn:process id="hostile_process" name="Hostile process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="hostile" />
    {body}
    <bpmn:endEvent id="done"><bpmn:incoming>f_end</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""
    deploy_xml(council, xml)
    with stopped_within(10), pytest.raises(ProcessFault) as caught, council.begin() as s:
        engine.start(s, "hostile_process", "C001")
    assert caught.value.instance_id is None and caught.value.child_id == "C001"
    with council.begin() as s:
        engine.record_fault(s, caught.value, "start")
    with council() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 0
        incident = s.scalars(select(Incident)).one()
        assert incident.instance_id is None and incident.child_id == "C001" and "time limit" in incident.message


# ---- refused at deploy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, refusal",
    [
        ("content = open('/etc/passwd').read()", '"open" is not'),
        ("kind = type(note)", '"type" is not'),
        ("value = getattr(note, 'upper')", '"getattr" is not'),
        ("names = vars()", '"vars" is not'),
        ("names = globals()", '"globals" is not'),
        ("inner = len.__self__", "a function's attributes are not allowed"),
        ("inner = note.__class__", '".__class__" is not'),
        ("inner = add_days.cache_info", "a function's attributes are not allowed"),
        ("len = 3", '"len" is a function of this service'),
    ],
)
def test_deploy_refuses_what_diagram_code_may_not_call_or_read_naming_the_element(council, code, refusal):
    with pytest.raises(DeploymentRejected) as caught:
        deploy_xml(council, after_a_day(script(code)))
    (error,) = caught.value.errors
    assert error.file == "processes/hostile.bpmn" and error.element_id == "hostile" and error.line
    assert refusal in error.message


@pytest.mark.parametrize(
    "element",
    [
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>type(x)</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>",
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        '<bpmn:completionCondition>open("x")</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>',
        "<bpmn:standardLoopCharacteristics><bpmn:loopCondition>vars()</bpmn:loopCondition></bpmn:standardLoopCharacteristics>",
    ],
)
def test_deploy_checks_loop_counts_and_conditions(council, element):
    body = script("one = 1").replace("<bpmn:script>", element + "<bpmn:script>")
    with pytest.raises(DeploymentRejected) as caught:
        deploy_xml(council, after_a_day(body))
    assert caught.value.errors[0].element_id == "hostile"


def test_deploy_refuses_a_cycle_timer_more_often_than_the_limit(council):
    with pytest.raises(DeploymentRejected, match="more often than the limit"):
        deploy_xml(council, after_a_day(timer("timeCycle", '"R/PT0S"')))
    deploy_xml(council, after_a_day(timer("timeCycle", '"R3/P1D"')))


def test_a_form_field_may_not_take_the_name_of_a_function(council):
    form = '{"type": "object", "properties": {"working_days": {"type": "integer"}, "len": {"type": "string"}}}'
    with pytest.raises(DeploymentRejected) as caught:
        deploy_xml(council, after_a_day(script("one = 1")), {"forms/shadow.schema.json": form})
    assert {e.element_id for e in caught.value.errors} == {"working_days", "len"}


def test_task_data_cannot_hide_a_builtin_or_a_function_from_diagram_code():
    from engine.calendar import EXPRESSION_FUNCTIONS
    from engine.scripting import make_script_engine

    env = make_script_engine(EXPRESSION_FUNCTIONS).environment
    assert env.evaluate("len(items)", {"items": [1, 2], "len": "not a function"}) == 2
    with clocks.using(clocks.FrozenClock("2026-03-02T09:00:00+00:00")):
        assert env.evaluate("add_days(1)", {"add_days": 5}).startswith("2026-03-03")


def test_the_limits_refuse_each_kind_of_huge_value_before_building_it():
    from engine.calendar import EXPRESSION_FUNCTIONS
    from engine.scripting import ScriptError, make_script_engine

    env = make_script_engine(EXPRESSION_FUNCTIONS).environment
    for code in [
        "r = 1 << 10 ** 9",
        "r = pow(2, 10 ** 9)",
        "r = round(5, -10 ** 9)",
        "r = '%1000000000d' % 1",
        "r = 'ab'.ljust(10 ** 9)",
        "r = 'a,b'.replace(',', 'x' * 10 ** 6)",
        "r = [0] * 10 ** 9",
        "r = [[0] * 1000] * 10 ** 6",
        "y = []\nfor i in range(100):\n    y.append('x' * 10 ** 6)",
        "s = 'x' * 10 ** 6\nr = str([s] * 2)",
        "r = ''.join(['x' * 10 ** 6] * 2)",
        "r = sum([[1], [2]], [])",
    ]:
        with stopped_within(5), pytest.raises(ScriptError) as caught:
            env.execute(code, {})
        assert caught.value.limit == "size", code
    env.execute("r = ', '.join(str(n) for n in range(10))\nt = 'x' * 1000 + f'{3:>5}'", data := {})
    assert data["r"].startswith("0, 1") and len(data["t"]) == 1005


def test_an_engine_error_is_not_a_fault():
    assert not issubclass(EngineError, ProcessFault)


@pytest.mark.parametrize("code", ["kinds = {'initial', 'review'}", "rate = float('nan')", "numbers = range(3)"])
def test_a_script_leaving_what_cannot_be_stored_is_an_incident_not_a_server_error(council, engine, code):
    deploy_xml(council, after_a_day(script(code)))
    with council.begin() as s:
        hostile = engine.start(s, "hostile_process", "C001").id
    result = sweep(engine, council, "2026-03-04T09:00:00+00:00")
    assert result.incidents == [hostile]
    with council() as s:
        assert "process data must be text, numbers, lists or dicts" in s.scalars(select(Incident.message)).one()
