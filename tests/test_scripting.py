"""A process owner's diagram code runs restricted: it can read and shape task data, nothing more."""

import json
from types import SimpleNamespace

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from engine.scripting import (
    RestrictedEnvironment,
    ScriptError,
    check_template,
    compile_expression,
    compile_rule,
    compile_script,
    guarded_getattr,
    make_script_engine,
    render_instructions,
)


def days_until_review(meeting_date):
    return 42 if meeting_date else None


@pytest.fixture
def env():
    return RestrictedEnvironment({"days_until_review": days_until_review})


@pytest.fixture
def pep_data():
    return {
        "child_name": "Sam",
        "attendance": 95,
        "rating": "Green",
        "targets": [{"text": "Read daily", "met": False}, {"text": "Times tables", "met": False}],
    }


# --- normal use -----------------------------------------------------------------------------


def test_condition_over_task_data_does_not_change_it(env, pep_data):
    before = json.dumps(pep_data)
    assert env.evaluate('attendance >= 90 and rating == "Green"', pep_data) is True
    assert env.evaluate('attendance >= 99 or rating == "Red"', pep_data) is False
    assert json.dumps(pep_data) == before


def test_expression_cannot_assign_into_task_data(env, pep_data):
    assert env.evaluate("(flag := 1) + attendance", pep_data) == 96
    assert "flag" not in pep_data


def test_script_assigns_variables_and_updates_targets(env, pep_data):
    script = (
        'targets[0]["met"] = True\n'
        'targets.append({"text": "Attend club", "met": False})\n'
        "met_count = len([t for t in targets if t['met']])\n"
        "summary = child_name + ': ' + str(met_count) + ' of ' + str(len(targets))\n"
        "total = 0\n"
        "for i, target in enumerate(targets):\n"
        "    total += i\n"
        "first, *rest = sorted(t['text'] for t in targets)\n"
        "label = f'{child_name} attended {attendance:.1f}%'\n"
    )
    assert env.execute(script, pep_data) is True
    assert pep_data["targets"][0]["met"] is True
    assert pep_data["targets"][2] == {"text": "Attend club", "met": False}
    assert pep_data["met_count"] == 1
    assert pep_data["summary"] == "Sam: 1 of 3"
    assert pep_data["total"] == 3
    assert pep_data["first"] == "Attend club"
    assert pep_data["label"] == "Sam attended 95.0%"


def test_script_can_delete_a_field(env, pep_data):
    env.execute("del rating", pep_data)
    assert "rating" not in pep_data


def test_domain_function_is_callable_from_expression_and_script(env, pep_data):
    assert env.evaluate("days_until_review('2024-09-01')", pep_data) == 42
    env.execute("review_in = days_until_review('2024-09-01')", pep_data)
    assert pep_data["review_in"] == 42


def test_task_data_stays_plain_json_after_a_script(env, pep_data):
    script = (
        "def double(n):\n"
        "    return n * 2\n"
        "doubled = double(attendance)\n"
        "shout = lambda s: s.upper()\n"
        "counter = len\n"
        "loud = shout(child_name)\n"
    )
    env.execute(script, pep_data)
    assert pep_data["doubled"] == 190
    assert pep_data["loud"] == "SAM"
    for name in ("double", "shout", "counter", "days_until_review", "__builtins__", "_getattr_", "len"):
        assert name not in pep_data
    assert not any(key.startswith("_") for key in pep_data)
    json.dumps(pep_data)


def test_field_named_like_a_domain_function_is_refused(env, pep_data):
    pep_data["days_until_review"] = 3
    with pytest.raises(ScriptError, match="days_until_review"):
        env.execute("x = 1", pep_data)


def test_task_data_cannot_replace_a_guard(env):
    data = {"_getattr_": lambda obj, name: getattr(obj, name), "__builtins__": {"open": open}}
    with pytest.raises(ScriptError, match="open"):
        env.evaluate("open('/etc/passwd')", data)
    assert env.evaluate("len('abc')", data) == 3


# --- refused at compile time ----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        '__import__("os")',
        "import os",
        "from os import path",
        "().__class__.__bases__[0].__subclasses__()",
        "x.__dict__",
        "_secret = 1",
        '"{0.__class__}".format(x)',
        'str.format("{0.__class__}", x)',
        "'{x.__class__}'.format_map({'x': x})",
        "(lambda: 0).__globals__",
        "(lambda: 0).__code__",
        "(i for i in []).gi_frame",
        "(i for i in []).gi_frame.f_back.f_globals",
        "str.mro()",
        'getattr(x, "__class__")',
        "globals()",
        "vars()",
        "locals()",
        'eval("1")',
        'exec("x=1")',
        "compile('1', 'f', 'eval')",
        "print(x)",
        "class Escape: pass",
        "days_until_review(__x=1)",
        "breakpoint()",
    ],
)
def test_a_process_owner_script_cannot_escape_at_compile_time(source):
    with pytest.raises(ScriptError) as caught:
        compile_script(source)
    assert caught.value.line == 1
    assert str(caught.value).startswith("line 1: ")


def test_compile_error_reports_the_line_at_fault():
    with pytest.raises(ScriptError) as caught:
        compile_script("ok = 1\nfine = 2\nimport os\n")
    assert caught.value.line == 3
    assert "import" in caught.value.message


def test_syntax_error_carries_its_line():
    with pytest.raises(ScriptError) as caught:
        compile_script("a = 1\nb = (2\n")
    assert caught.value.line == 2
    assert "SyntaxError" in caught.value.message


def test_expressions_are_compiled_as_expressions():
    assert compile_expression("attendance >= 90") is compile_expression("attendance >= 90")
    with pytest.raises(ScriptError):
        compile_expression("x = 1")
    with pytest.raises(ScriptError):
        compile_expression("''.__class__")


# --- refused at run time --------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ['open("/etc/passwd")', "type(child_name)", "dir()", "input()", "hasattr(x, 'y')", "object"],
)
def test_a_process_owner_expression_cannot_reach_unsafe_builtins(env, expression):
    with pytest.raises(ScriptError, match="is not allowed|is not a function this service provides"):
        env.evaluate(expression, {"child_name": "Sam", "x": 1})


@pytest.mark.parametrize("exit_exception", ["SystemExit", "KeyboardInterrupt", "BaseException", "GeneratorExit"])
def test_a_process_owner_script_cannot_stop_the_worker(env, exit_exception):
    with pytest.raises(ScriptError, match="is not a function this service provides"):
        env.execute(f"raise {exit_exception}()", {})
    with pytest.raises(ScriptError, match="NameError"):  # nor by reaching it through a name of its own
        env.execute(f"e = {exit_exception}\nraise e()", {})


def test_a_script_may_raise_an_ordinary_error(env):
    with pytest.raises(ScriptError, match="ValueError: attendance missing"):
        env.execute("raise ValueError('attendance missing')", {})


def test_a_bare_reference_to_eval_is_refused(env):
    with pytest.raises(ScriptError, match='"eval" is not allowed'):
        env.execute("e = eval", {})


@pytest.mark.parametrize(
    "name",
    [
        "gi_frame",
        "gi_code",
        "f_globals",
        "f_locals",
        "f_back",
        "cr_frame",
        "ag_frame",
        "tb_frame",
        "func_globals",
        "mro",
        "format",
        "format_map",
        "__class__",
        "__globals__",
    ],
)
def test_the_runtime_attribute_guard_refuses_introspection(name):
    gen = (i for i in [])
    with pytest.raises(AttributeError, match=name):
        guarded_getattr(gen, name)


def test_the_runtime_attribute_guard_refuses_bound_str_format():
    with pytest.raises(AttributeError):
        guarded_getattr("{0.__class__}", "format")
    assert guarded_getattr("abc", "upper")() == "ABC"


def test_the_runtime_attribute_guard_raises_for_missing_attributes():
    with pytest.raises(AttributeError):
        guarded_getattr({}, "no_such_method")


def test_writing_attributes_of_non_data_objects_is_refused(env):
    with pytest.raises(ScriptError, match='".hacked" is not a method of a plain value'):
        env.execute("def f():\n    return 1\nf.hacked = True\n", {})
    with pytest.raises(ScriptError, match="TypeError"):
        env.execute("def f():\n    return 1\nf.upper = True\n", {})


def test_runtime_error_has_type_message_and_line(env, pep_data):
    with pytest.raises(ScriptError) as caught:
        env.execute("a = 1\nb = targets[5]\n", pep_data)
    assert caught.value.line == 2
    assert caught.value.message == "IndexError: list index out of range"
    assert isinstance(caught.value.__cause__, IndexError)
    assert pep_data["a"] == 1  # like SpiffWorkflow, assignments before the error are kept


def test_service_tasks_are_not_supported(env):
    with pytest.raises(ScriptError, match="service tasks are not supported"):
        env.call_service({}, operation_name="send_email")


# --- instructions (Jinja) -------------------------------------------------------------------


def test_instructions_render_task_data():
    assert render_instructions("Meeting on {{ meeting_date }}", {"meeting_date": "2024-09-01"}) == (
        "Meeting on 2024-09-01"
    )


def test_instructions_can_format_with_the_percent_filter():
    assert render_instructions("{{ '%.1f'|format(rate) }}%", {"rate": 92.25}) == "92.2%"


def test_missing_field_renders_empty():
    assert render_instructions("Meeting on {{ meeting_date }}{{ school.name }}.", {}) == "Meeting on ."


def test_instructions_are_plain_text_not_html_escaped():
    assert render_instructions("{{ name }}", {"name": "O'Neil & <Co>"}) == "O'Neil & <Co>"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__class__ }}",
        "{{ x|attr('__class__') }}",
        "{{ x.format_map }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ x.mro }}",
    ],
)
def test_instructions_cannot_walk_to_python_internals(template):
    try:
        rendered = render_instructions(template, {"x": "text"})
    except ScriptError:
        return
    assert rendered == ""


@pytest.mark.parametrize(
    "template", ["{{ x.format(1) }}", "{{ '{0.__class__}'.format(x) }}", "{{ targets.append(1) }}"]
)
def test_unsafe_calls_in_instructions_raise(template):
    with pytest.raises(ScriptError, match="unsafe"):
        render_instructions(template, {"x": "{0.__class__}", "targets": []})


def test_template_syntax_error_has_its_line():
    with pytest.raises(ScriptError) as caught:
        check_template("Hello\n{% if %}\n")
    assert caught.value.line == 2
    check_template("Hello {{ child_name }}")


# --- SpiffWorkflow integration --------------------------------------------------------------


def test_engine_evaluates_and_executes_over_task_data(pep_data):
    engine = make_script_engine({"days_until_review": days_until_review})
    task = SimpleNamespace(data=pep_data)
    assert engine.evaluate(task, 'rating == "Green"') is True
    assert engine.evaluate(task, "flag", external_context={"flag": 7}) == 7
    assert engine.execute(task, "review_in = days_until_review('x')") is True
    assert pep_data["review_in"] == 42
    assert "flag" not in pep_data


def test_a_validate_rule_is_an_expression_or_a_script_that_fills_errors_and_changes_no_data(pep_data):
    environment = make_script_engine().environment
    assert environment.check('{} if rating == "Green" else {"rating": "Choose Green"}', pep_data) == {}
    rule = 'if rating != "Red":\n    errors["rating"] = f"The rating must be Red, not {rating}"\nrating = "Red"'
    compile_rule(rule)
    assert environment.check(rule, pep_data) == {"rating": "The rating must be Red, not Green"}
    assert pep_data["rating"] == "Green" and "errors" not in pep_data
    with pytest.raises(ScriptError) as caught:
        compile_rule('errors["x"] = 1\nopen("/etc/passwd")')
    assert caught.value.line == 2


def test_engine_validate_keeps_syntax_errors_for_dmn_and_refuses_escapes():
    engine = make_script_engine()
    engine.validate('rating == "Green"')
    with pytest.raises(SyntaxError):
        engine.validate("> 90")
    with pytest.raises(ScriptError):
        engine.validate("''.__class__")


BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="test">
  <bpmn:process id="pep" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score"/>
    <bpmn:scriptTask id="score" name="Score">
      <bpmn:script>SCRIPT</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="score" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="to_review"/>
    <bpmn:sequenceFlow id="to_good" sourceRef="gw" targetRef="good">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">CONDITION</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_review" sourceRef="gw" targetRef="review"/>
    <bpmn:endEvent id="good"/>
    <bpmn:endEvent id="review"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _run(script, condition="on_track", data=None):
    parser = BpmnParser()
    xml = BPMN.replace("SCRIPT", script).replace("CONDITION", condition)
    parser.add_bpmn_str(xml.encode(), filename="pep.bpmn")
    workflow = BpmnWorkflow(parser.get_spec("pep"), script_engine=make_script_engine())
    workflow.get_tasks(spec_name="start")[0].data.update(data or {})
    workflow.do_engine_steps()
    return workflow


def test_a_diagram_runs_its_script_and_condition_restricted():
    workflow = _run("on_track = attendance &gt;= 90", data={"attendance": 95})
    assert workflow.is_completed()
    assert workflow.data["on_track"] is True
    assert workflow.get_tasks(spec_name="good")[0].data["on_track"] is True


def test_a_diagram_script_that_imports_os_fails_the_task_with_its_line():
    with pytest.raises(WorkflowTaskException) as caught:
        _run("x = 1\nimport os")
    assert caught.value.line_number == 2
    assert caught.value.error_line == "import os"
    assert "import is not allowed" in str(caught.value)


def test_a_diagram_condition_that_walks_classes_fails_the_task():
    with pytest.raises(WorkflowTaskException, match="__class__"):
        _run("on_track = True", condition="on_track.__class__")


def test_a_name_error_in_a_diagram_script_suggests_the_field():
    with pytest.raises(WorkflowTaskException) as caught:
        _run("x = attendence + 1", data={"attendance": 95})
    assert caught.value.line_number == 1
    assert caught.value.error_type == "NameError"
    assert "Did you mean 'attendance'" in str(caught.value)


def test_instructions_can_show_dates_the_way_people_read_them():
    text = render_instructions(
        "Meeting on {{ meeting_date | ukdate }}, PEP due {{ pep_due | ukdate }}.",
        {"meeting_date": "2026-03-10", "pep_due": "2026-03-31T22:59:59+00:00"},
    )
    assert text == "Meeting on 10 March 2026, PEP due 31 March 2026."


def test_instructions_show_money_in_pounds_and_pence():
    assert (
        render_instructions("{{ a | gbp }}, {{ b | gbp }}, {{ c | gbp }}", {"a": 300.0, "b": "1500.5", "c": None})
        == "£300.00, £1,500.50, "
    )
