"""Deployment: a bundle of diagrams and forms is validated as a whole and stored immutably."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import deployments
from engine.deploy import Bundle, DeploymentRejected, deploy, file_name_problem
from engine.errors import NotFound
from engine.models import Deployment, Instance

from .conftest import BASIC_BUNDLE, ROOT, shipped_bundle

REVIEW = "processes/review.bpmn"
VIEWS = "processes/views.bpmn"
BASIC_PROCESSES = {"test_review", "test_initial_meeting", "test_fragile", "test_cycle", "test_views", "test_window"}
ENTERING_CARE = {
    "entry": "planned",
    "entered_care": "2026-03-02",
    "education_setting": "school",
    "school": "Oak Primary",
    "review_variant": "termly_review_due",
}
ASK_FOR_VIEWS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="ask_definitions"
                  targetNamespace="http://example.org/pep-test">
  <bpmn:process id="test_ask_views" name="Ask for the child's views" isExecutable="true">
    <bpmn:startEvent id="ask_start"><bpmn:outgoing>a1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="a1" sourceRef="ask_start" targetRef="ask" />
    <bpmn:callActivity id="ask" calledElement="test_views"><bpmn:incoming>a1</bpmn:incoming><bpmn:outgoing>a2</bpmn:outgoing></bpmn:callActivity>
    <bpmn:sequenceFlow id="a2" sourceRef="ask" targetRef="ask_end" />
    <bpmn:endEvent id="ask_end"><bpmn:incoming>a2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def basic() -> Bundle:
    return Bundle.from_dirs(BASIC_BUNDLE)


def with_change(path: str, old: str, new: str, bundle: Bundle | None = None) -> Bundle:
    bundle = bundle or basic()
    assert old in bundle.files[path], f"test set-up: {old!r} not in {path}"
    bundle.files[path] = bundle.files[path].replace(old, new, 1)
    return bundle


def rejected(sessions, bundle: Bundle) -> list:
    """Deploy a bad bundle; return its errors and check that nothing was stored."""
    with sessions() as s:
        with pytest.raises(DeploymentRejected) as caught:
            deploy(s, bundle, actor="owner@demo.test")
        s.rollback()
        assert s.scalar(select(func.count(Deployment.id))) == 0, "a rejected bundle stored something"
    return caught.value.errors


def line_of(content: str, text: str) -> int:
    """The line of a file on which `text` first appears."""
    assert text in content, f"test set-up: {text!r} not in the file"
    return content[: content.index(text)].count("\n") + 1


def deployed_next(sessions, bundle: Bundle, retire=(), note=None) -> Deployment:
    with sessions.begin() as s:
        deployment, created = deploy(s, bundle, actor="owner@demo.test", note=note, retire=retire)
        assert created, "nothing new was deployed"
        return deployment


def refused_next(sessions, bundle: Bundle, retire=()) -> list:
    """Deploy onto what is there a bundle that is refused; return its errors and check nothing was stored."""
    with sessions() as s:
        before = s.scalar(select(func.count(Deployment.id)))
        with pytest.raises(DeploymentRejected) as caught:
            deploy(s, bundle, actor="owner@demo.test", retire=retire)
        s.rollback()
        assert s.scalar(select(func.count(Deployment.id))) == before, "a rejected bundle stored something"
    return caught.value.errors


def only_error(errors, file: str, element: str | None):
    matching = [e for e in errors if e.file == file and e.element_id == element]
    assert matching, f"no error for {file} [{element}] in: {[str(e) for e in errors]}"
    return matching[0]


def test_a_valid_bundle_becomes_version_1_with_every_process(council):
    with council.begin() as s:
        deployment, created = deploy(s, basic(), actor="owner@demo.test", note="first")
        assert created and deployment.version == 1
        assert {d.process_id for d in deployment.definitions} == {
            "test_review",
            "test_initial_meeting",
            "test_fragile",
            "test_cycle",
            "test_views",
            "test_window",
        }
        assert deployment.file("forms/qa.schema.json") is not None
        assert [d.start_messages for d in deployment.definitions if d.process_id == "test_cycle"] == [["review_due"]]


def test_the_same_files_deployed_again_are_the_same_version(council):
    with council.begin() as s:
        first, _ = deploy(s, basic(), actor="a@demo.test")
        again, created = deploy(s, basic(), actor="b@demo.test")
        assert not created and again.id == first.id


def test_a_changed_diagram_is_a_new_version_and_running_instances_stay_on_theirs(council, engine):
    with council.begin() as s:
        deploy(s, basic(), actor="owner@demo.test")
        old = engine.start(s, "test_review", "C001", actor="sw@demo.test")
    changed = with_change(REVIEW, 'name="Arrange the PEP meeting"', 'name="Arrange the termly PEP meeting"')
    with council.begin() as s:
        v2, created = deploy(s, changed, actor="owner@demo.test")
        assert created and v2.version == 2
        new = engine.start(s, "test_review", "C002", actor="sw@demo.test")
        assert new.definition.deployment.version == 2
        assert s.get(Instance, old.id).definition.deployment.version == 1


def test_going_back_to_an_earlier_version_deploys_it_again_as_the_newest(council, engine):
    with council.begin() as s:
        v1, _ = deploy(s, basic(), actor="owner@demo.test")
        deploy(s, with_change(REVIEW, 'name="Arrange the PEP meeting"', 'name="Plan it"'), actor="owner@demo.test")
        v3, created = deploy(s, basic(), actor="owner@demo.test", note="back to version 1")
        assert created and v3.version == 3 and {f.content for f in v3.files} == {f.content for f in v1.files}
        started = engine.start(s, "test_review", "C001", actor="sw@demo.test")
        assert started.definition.deployment.version == 3


def test_malformed_xml_names_the_file_and_line(council):
    bundle = with_change(REVIEW, '<bpmn:endEvent id="done" name="PEP signed off">', '<bpmn:endEvent id="done"')
    error = rejected(council, bundle)[0]
    assert error.file == REVIEW and "well-formed" in error.message and error.line


def test_external_entities_are_refused(council):
    xxe = basic()
    xxe.files[REVIEW] = (
        xxe.files[REVIEW]
        .replace(
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
        )
        .replace("Review due", "&secret;")
    )
    error = only_error(rejected(council, xxe), REVIEW, None)
    assert "unsafe XML" in error.message and "DOCTYPE" in error.message and error.line == 2


def test_an_entity_expansion_bomb_is_refused(council):
    bomb = basic()
    lol = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb.files[REVIEW] = (
        bomb.files[REVIEW]
        .replace(
            '<?xml version="1.0" encoding="UTF-8"?>', f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE d [{lol}]>'
        )
        .replace("Review due", "&l9;")
    )
    error = only_error(rejected(council, bomb), REVIEW, None)
    assert "unsafe XML" in error.message and error.line == 2


def test_a_diagram_that_breaks_the_bpmn_schema_names_the_element(council):
    bundle = with_change(
        REVIEW,
        '<bpmn:endEvent id="done" name="PEP signed off">',
        '<bpmn:endEvent id="done" name="PEP signed off" colour="red">',
    )
    error = only_error(rejected(council, bundle), REVIEW, "done")
    assert error.line == line_of(bundle.files[REVIEW], 'colour="red"') and "colour" in error.message


def test_a_lane_that_is_not_a_role_is_refused(council):
    bundle = with_change(REVIEW, 'name="Designated Teacher"', 'name="Head of Year"')
    error = only_error(rejected(council, bundle), REVIEW, "lane_dt")
    assert '"Head of Year" is not a known role' in error.message and error.line


def test_a_user_task_outside_every_lane_is_refused(council):
    bundle = with_change(REVIEW, "<bpmn:flowNodeRef>qa</bpmn:flowNodeRef>", "")
    assert "not in any lane" in only_error(rejected(council, bundle), REVIEW, "qa").message


def test_a_user_task_without_a_form_is_refused(council):
    bundle = with_change(REVIEW, '<spiffworkflow:property name="formJsonSchemaFilename" value="qa.schema.json" />', "")
    assert "names no form" in only_error(rejected(council, bundle), REVIEW, "qa").message


def test_a_user_task_naming_a_missing_form_is_refused(council):
    bundle = with_change(REVIEW, 'value="qa.schema.json"', 'value="quality.schema.json"')
    assert '"quality.schema.json" is not in forms/' in only_error(rejected(council, bundle), REVIEW, "qa").message


def test_a_form_that_is_not_valid_json_schema_names_the_form_and_field(council):
    bundle = with_change("forms/qa.schema.json", '"enum": ["Green", "Amber", "Red"]', '"enum": "Green"')
    error = only_error(rejected(council, bundle), "forms/qa.schema.json", "properties/rating/enum")
    assert "not a valid JSON Schema" in error.message


def test_a_form_field_named_like_the_task_pages_own_controls_is_refused(council):
    bundle = with_change("forms/qa.schema.json", '"feedback"', '"_do"')
    error = only_error(rejected(council, bundle), "forms/qa.schema.json", "_do")
    assert "rename the field" in error.message


def test_what_a_review_form_shows_must_be_the_pep_or_forms_of_the_bundle(council):
    bundle = with_change("forms/qa.schema.json", '"type": "object",', '"type": "object", "x-reviews": "peps",')
    error = only_error(rejected(council, bundle), "forms/qa.schema.json", "x-reviews")
    assert 'x-reviews is "peps", which says nothing a task can show' in error.message and 'write "pep"' in error.message
    bundle = with_change(
        "forms/qa.schema.json",
        '"type": "object",',
        '"type": "object", "x-reviews": ["complete_pep.schema.json", "epep.schema.json"],',
    )
    error = only_error(rejected(council, bundle), "forms/qa.schema.json", "x-reviews")
    assert error.message == 'x-reviews names the form "epep.schema.json", which is not in forms/'
    bundle = with_change("forms/qa.schema.json", '"type": "object",', '"type": "object", "x-reviews": [],')
    assert (
        "says nothing a task can show"
        in only_error(rejected(council, bundle), "forms/qa.schema.json", "x-reviews").message
    )
    bundle = with_change("forms/views.schema.json", '"type": "object",', '"type": "object", "x-reviews": "pep",')
    error = only_error(rejected(council, bundle), "forms/views.schema.json", "x-reviews")
    assert "cannot be used on a form answered through a single-use link" in error.message


def test_a_review_form_may_show_the_whole_pep_or_the_sections_of_some_forms(council):
    for declaration in ('"pep"', '["complete_pep.schema.json", "arrange_meeting.schema.json"]'):
        bundle = with_change(
            "forms/qa.schema.json", '"type": "object",', f'"type": "object", "x-reviews": {declaration},'
        )
        with council.begin() as s:
            deploy(s, bundle, actor="owner@demo.test")


def test_a_form_that_is_not_json_names_the_line(council):
    bundle = with_change("forms/qa.schema.json", '"required": ["rating"],', '"required": ["rating"]')
    error = only_error(rejected(council, bundle), "forms/qa.schema.json", None)
    assert "not valid JSON" in error.message and error.line == 6


def test_a_script_that_tries_to_import_is_refused_with_its_line(council):
    bundle = with_change(
        REVIEW,
        "pep_due = end_of_day(working_days(5, meeting_date))",
        "pep_due = end_of_day(working_days(5, meeting_date))\nos = __import__('os')",
    )
    error = only_error(rejected(council, bundle), REVIEW, "set_deadline")
    assert error.line and "script" in error.message


def test_a_condition_with_a_syntax_error_names_the_sequence_flow(council):
    bundle = with_change(REVIEW, 'rating == "Red"', 'rating = "Red"')
    assert "conditionExpression" in only_error(rejected(council, bundle), REVIEW, "f_resubmit").message


def test_a_timer_expression_walking_dunders_is_refused(council):
    bundle = with_change(REVIEW, "working_days(-2, pep_due)", "pep_due.__class__.__mro__")
    assert "timeDate" in only_error(rejected(council, bundle), REVIEW, "reminder").message


def test_a_due_date_expression_that_does_not_compile_is_refused(council):
    bundle = with_change(REVIEW, 'name="dueDate" value="pep_due"', 'name="dueDate" value="pep_due +"')
    assert 'property "dueDate"' in only_error(rejected(council, bundle), REVIEW, "complete_pep").message


def test_a_validate_rule_that_does_not_compile_is_refused(council):
    bundle = with_change(REVIEW, "{} if is_working_day(meeting_date)", "{} if is_working_day(meeting_date")
    assert 'property "validate"' in only_error(rejected(council, bundle), REVIEW, "arrange_meeting").message


def test_instructions_with_a_template_error_are_refused(council):
    bundle = with_change(REVIEW, "{{ child_name }}", "{{ child_name ")
    assert "instructionsForEndUser" in only_error(rejected(council, bundle), REVIEW, "arrange_meeting").message


def test_a_notification_to_an_unknown_role_is_refused(council):
    bundle = with_change(
        "processes/deadlines.bpmn", 'value="VS Head, Social Worker, Carer"', 'value="VS Head, Caretaker"'
    )
    error = only_error(rejected(council, bundle), "processes/deadlines.bpmn", "tell_vs_head")
    assert '"Caretaker" is not a known role' in error.message


def test_a_call_activity_to_a_missing_process_is_refused(council):
    bundle = with_change(
        REVIEW,
        '<bpmn:endEvent id="done" name="PEP signed off">\n      <bpmn:incoming>f_accepted</bpmn:incoming>',
        '<bpmn:callActivity id="file_pep" calledElement="file_to_mosaic">\n      <bpmn:incoming>f_accepted</bpmn:incoming>'
        '\n      <bpmn:outgoing>f_filed</bpmn:outgoing>\n    </bpmn:callActivity>\n    <bpmn:sequenceFlow id="f_filed" '
        'sourceRef="file_pep" targetRef="done" />\n    <bpmn:endEvent id="done" name="PEP signed off">\n      '
        "<bpmn:incoming>f_filed</bpmn:incoming>",
    )
    assert '"file_to_mosaic"' in only_error(rejected(council, bundle), REVIEW, "file_pep").message


def test_two_files_defining_one_process_are_refused(council):
    bundle = basic()
    bundle.files["processes/copy.bpmn"] = bundle.files[REVIEW].replace('id="review_definitions"', 'id="copy"')
    error = only_error(rejected(council, bundle), REVIEW, "test_review")
    assert "already defined in processes/copy.bpmn" in error.message


def test_one_bad_file_rejects_the_whole_bundle_and_all_errors_are_listed(council):
    bundle = with_change(REVIEW, 'name="Designated Teacher"', 'name="Head of Year"')
    bundle = with_change("forms/qa.schema.json", '"enum": ["Green", "Amber", "Red"]', '"enum": "Green"', bundle)
    errors = rejected(council, bundle)
    assert {e.file for e in errors} == {REVIEW, "forms/qa.schema.json"}


def test_a_refused_entity_declared_further_down_gives_the_line_of_its_declaration(council):
    bundle = basic()
    bundle.files[REVIEW] = bundle.files[REVIEW].replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->\n\n'
        '<!DOCTYPE d [\n  <!ENTITY secret SYSTEM "file:///etc/passwd">\n]>',
    )
    assert only_error(rejected(council, bundle), REVIEW, None).line == 4


# ---- references to ids that are not there ----------------------------------------------------


def test_a_sequence_flow_to_a_missing_step_names_the_flow_and_the_missing_id(council):
    bundle = with_change(
        REVIEW, 'sourceRef="start" targetRef="arrange_meeting"', 'sourceRef="start" targetRef="Task_9"'
    )
    error = only_error(rejected(council, bundle), REVIEW, "f_start")
    assert error.message == "sequence flow f_start points to Task_9, which is not in this diagram"
    assert error.line == line_of(bundle.files[REVIEW], 'id="f_start"')


def test_a_sequence_flow_from_a_missing_step_is_refused_not_ignored(council):
    bundle = with_change(
        REVIEW, 'sourceRef="start" targetRef="arrange_meeting"', 'sourceRef="begin" targetRef="arrange_meeting"'
    )
    error = only_error(rejected(council, bundle), REVIEW, "f_start")
    assert error.message == "sequence flow f_start starts at begin, which is not in this diagram" and error.line


def test_a_sequence_flow_to_a_lane_says_it_is_not_a_step(council):
    bundle = with_change(
        REVIEW, 'sourceRef="start" targetRef="arrange_meeting"', 'sourceRef="start" targetRef="lane_dt"'
    )
    error = only_error(rejected(council, bundle), REVIEW, "f_start")
    assert (
        error.message == "sequence flow f_start points to lane_dt, which is a lane, not a step of process test_review"
    )


def test_a_deadline_attached_to_a_missing_task_is_refused_not_ignored(council):
    bundle = with_change(
        REVIEW,
        'attachedToRef="complete_pep" cancelActivity="true"',
        'attachedToRef="complete_it" cancelActivity="true"',
    )
    error = only_error(rejected(council, bundle), REVIEW, "late")
    assert error.message == "boundary event late is attached to complete_it, which is not in this diagram"
    assert error.line == line_of(bundle.files[REVIEW], 'id="late"')


def test_a_default_flow_that_is_not_there_names_the_gateway(council):
    bundle = with_change(REVIEW, 'default="f_accepted"', 'default="f_approved"')
    error = only_error(rejected(council, bundle), REVIEW, "qa_outcome")
    assert error.message == "exclusiveGateway qa_outcome has the default flow f_approved, which is not in this diagram"
    assert error.line == line_of(bundle.files[REVIEW], 'id="qa_outcome"')


def test_a_message_event_naming_a_message_not_in_the_diagram_names_the_event(council):
    bundle = with_change(REVIEW, 'messageRef="meeting_rescheduled"', 'messageRef="meeting_moved"')
    error = only_error(rejected(council, bundle), REVIEW, "rescheduled")
    assert error.message == "boundaryEvent rescheduled uses the message meeting_moved, which is not in this diagram"
    assert error.line == line_of(bundle.files[REVIEW], 'messageRef="meeting_moved"')


def test_a_timer_without_a_time_names_the_event_and_its_line(council):
    bundle = with_change(
        REVIEW, '<bpmn:timeDate xsi:type="bpmn:tFormalExpression">working_days(-2, pep_due)</bpmn:timeDate>', ""
    )
    error = only_error(rejected(council, bundle), REVIEW, "reminder")
    assert "Time Specification" in error.message and error.line == line_of(bundle.files[REVIEW], 'id="reminder"')


# ---- deployments are per process ---------------------------------------------------------------


def test_deploying_one_process_after_the_whole_bundle_leaves_every_process_startable(demo_council, engine):
    whole = deployed_next(demo_council, Bundle.from_dirs(ROOT))
    one = shipped_bundle("pep_review.bpmn")  # one diagram, none of the forms
    one.files["processes/pep_review.bpmn"] = one.files["processes/pep_review.bpmn"].replace(
        'name="Termly PEP review (Warwickshire)"', 'name="Termly PEP review"'
    )
    second = deployed_next(demo_council, one, note="Renamed the termly review")
    assert second.version == 2
    assert {f.path for f in second.files} == {f.path for f in whole.files}
    assert {(d.process_id, tuple(d.start_messages)) for d in second.definitions} == {
        (d.process_id, tuple(d.start_messages)) for d in whole.definitions
    }
    with demo_council.begin() as s:
        for definition in whole.definitions:
            assert deployments.latest_definition(s, definition.process_id).deployment.version == 2, (
                definition.process_id
            )
        started = engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test")
        assert [(i.definition.process_id, i.definition.deployment.version) for i in started] == [("initial_pep", 2)]


def test_a_retired_process_starts_no_more_by_name_or_message_and_running_ones_carry_on(demo_council, engine):
    deployed_next(demo_council, Bundle.from_dirs(ROOT))
    with demo_council.begin() as s:
        running = engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE)[0].id
    retired = deployed_next(demo_council, Bundle(), retire=["initial_pep"], note="Initial PEPs move to the new system")
    assert retired.retired == ["initial_pep"] and retired.file("processes/initial_pep.bpmn") is None
    assert "initial_pep" not in {d.process_id for d in retired.definitions}
    with demo_council.begin() as s:
        assert engine.send_message(s, "child_becomes_looked_after", "Y6", ENTERING_CARE) == []
        with pytest.raises(NotFound, match='"initial_pep" was retired in version 2'):
            engine.start(s, "initial_pep", "Y6")
        assert (
            s.get(Instance, running).status == "running" and s.get(Instance, running).definition.deployment.version == 1
        )


def test_the_same_files_again_in_a_smaller_bundle_change_nothing(deployed, sessions):
    with sessions.begin() as s:
        again, created = deploy(s, Bundle({VIEWS: basic().files[VIEWS]}), actor="owner@demo.test")
        assert not created and again.version == 1


def test_a_diagram_that_no_longer_holds_a_process_is_refused_unless_the_process_is_retired(deployed, sessions):
    renamed = Bundle({VIEWS: basic().files[VIEWS].replace('id="test_views"', 'id="test_student_views"')})
    error = only_error(refused_next(sessions, renamed), VIEWS, "test_views")
    assert "missing from this deployment" in error.message and "retire it explicitly" in error.message
    after = deployed_next(sessions, renamed, retire=["test_views"])
    assert {d.process_id for d in after.definitions} == BASIC_PROCESSES - {"test_views"} | {"test_student_views"}
    assert after.retired == ["test_views"]


def test_a_process_moved_to_another_file_leaves_its_old_file_behind(deployed, sessions):
    moved = deployed_next(sessions, Bundle({"processes/student_views.bpmn": basic().files[VIEWS]}))
    assert moved.file(VIEWS) is None and moved.retired is None
    assert {d.process_id: d.file_path for d in moved.definitions}["test_views"] == "processes/student_views.bpmn"


def test_a_process_cannot_be_retired_alone_from_a_diagram_that_holds_others(deployed, sessions):
    error = only_error(
        refused_next(sessions, Bundle(), retire=["test_cycle"]), "processes/deadlines.bpmn", "test_cycle"
    )
    assert "also holds test_fragile, test_initial_meeting, test_window" in error.message


def test_only_a_deployed_process_can_be_retired_and_not_while_the_bundle_holds_it(deployed, sessions):
    assert (
        "has no process"
        in only_error(refused_next(sessions, Bundle(), retire=["test_annual"]), "(deployment)", "test_annual").message
    )
    error = only_error(
        refused_next(sessions, Bundle({VIEWS: basic().files[VIEWS]}), retire=["test_views"]), VIEWS, "test_views"
    )
    assert "the bundle still holds it" in error.message


def test_carried_over_diagrams_are_validated_with_the_new_ones(deployed, sessions):
    caller = Bundle({"processes/ask_views.bpmn": ASK_FOR_VIEWS})
    error = only_error(refused_next(sessions, caller, retire=["test_views"]), "processes/ask_views.bpmn", "ask")
    assert 'calls process "test_views", which is not in this deployment' in error.message
    calling = deployed_next(sessions, caller)  # test_views, carried over from version 1, is called across files
    assert {d.process_id for d in calling.definitions} == BASIC_PROCESSES | {"test_ask_views"}


def test_pep_deploy_refuses_a_file_whose_name_breaks_the_rule(tmp_path):
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes" / "Review v2.bpmn").write_text(basic().files[REVIEW], encoding="utf-8")
    with pytest.raises(DeploymentRejected) as caught:
        Bundle.from_dirs(tmp_path)
    [error] = caught.value.errors
    assert error.file.endswith("Review v2.bpmn") and error.message == file_name_problem("processes/Review v2.bpmn")


def _shipped_epep_with(old: str, new: str) -> Bundle:
    bundle = shipped_bundle(forms=("",))
    return with_change("forms/review_complete_epep.schema.json", old, new, bundle)


def test_sections_that_name_a_missing_field_twice_or_leave_one_out_are_refused_with_their_line(council):
    missing = rejected(council, _shipped_epep_with('"chaired_by", "attendees"]', '"chair", "attendees"]'))
    error = only_error(missing, "forms/review_complete_epep.schema.json", "chair")
    assert error.message == 'section "The meeting" names the field "chair", which the form does not have'
    assert error.line == 6 and str(error).startswith("forms/review_complete_epep.schema.json:6 [chair]")
    left_out = only_error(missing, "forms/review_complete_epep.schema.json", "chaired_by")
    assert left_out.message == '"chaired_by" is in no section of x-sections: add it to the section that asks it'
    twice = rejected(
        council, _shipped_epep_with('"fields": ["child_views", ', '"fields": ["chaired_by", "child_views", ')
    )
    assert "is in two sections" in only_error(twice, "forms/review_complete_epep.schema.json", "chaired_by").message
    untitled = rejected(council, _shipped_epep_with('{"title": "The meeting", ', "{"))
    assert "must have a title" in only_error(untitled, "forms/review_complete_epep.schema.json", "x-sections").message


def test_unknown_prefill_choices_and_pep_parts_are_refused_naming_the_field(council):
    bundle = shipped_bundle(forms=("",))
    [path] = [p for p in bundle.form_files() if '"x-choices": "case_team"' in bundle.files[p]]
    errors = rejected(council, with_change(path, '"x-choices": "case_team"', '"x-choices": "everyone"', bundle))
    assert [e.message for e in errors] == ['x-choices is "everyone": it may be "case_team"'] and errors[0].line
    bundle = shipped_bundle(forms=("",))
    [path, *_] = [p for p in bundle.form_files() if '"x-prefill": "child.school"' in bundle.files[p]]
    errors = rejected(council, with_change(path, '"x-prefill": "child.school"', '"x-prefill": "child.address"', bundle))
    assert errors[0].message.startswith('x-prefill is "child.address": it may be "case_team" or "child.id"')
    errors = rejected(council, _shipped_epep_with('"chaired_by": {', '"chaired_by": {"x-prefill": "case_team", '))
    assert 'x-prefill "case_team" fills a list of people' in errors[0].message
    errors = rejected(council, _shipped_epep_with('"x-pep-section": "targets"', '"x-pep-section": "goals"'))
    error = only_error(errors, "forms/review_complete_epep.schema.json", "pp_plus_spend")
    assert error.message.startswith('x-pep-section is "goals": it may be "voice", "views"')
    assert (
        '"pp_plus_spend":'
        in shipped_bundle(forms=("review_complete_epep",)).files[error.file].splitlines()[error.line - 1]
    )
