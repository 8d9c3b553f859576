"""The PEP cycle router (processes/pep_cycle.bpmn): after each PEP, which PEP comes next, or none.

The clock is frozen on Monday 2 March 2026 (academic year 2025-26). Academic-year ages then (age on
31 August 2025): Y5 9, Y6 11, Y11 15, P16 16, P18 17, EY3 2; EY2 (born 9 May 2024) is 1 year old.
A small catcher diagram, deployed with the router in these tests only, starts on each review's start
message so that the message the router throws, and its payload, can be checked.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.models import Instance, Notification, OpenTask
from engine.people import add_child, set_case_team
from engine.timers import fire_due_timers
from tests.conftest import shipped_bundle

from ..helpers import Council

VARIANTS = ("termly_review_due", "post16_review_due", "all_ages_review_due", "ppg_review_due", "word_form_review_due")
TARGETS = [{"what": "Read a chapter book each week", "by_when": "2026-05-29"}]


def _catcher_process(message: str) -> str:
    return f"""
  <bpmn:process id="catch_{message}" name="Caught {message}" isExecutable="true">
    <bpmn:laneSet id="catch_{message}_lanes">
      <bpmn:lane id="catch_{message}_lane" name="VS Administrator">
        <bpmn:flowNodeRef>catch_{message}_start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>catch_{message}_task</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>catch_{message}_end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="catch_{message}_start" name="{message}">
      <bpmn:outgoing>catch_{message}_f1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="catch_{message}_def" messageRef="{message}">
        <bpmn:extensionElements>
          <spiffworkflow:messageVariable>review</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="catch_{message}_f1" sourceRef="catch_{message}_start" targetRef="catch_{message}_task" />
    <bpmn:manualTask id="catch_{message}_task" name="Review {message} started">
      <bpmn:incoming>catch_{message}_f1</bpmn:incoming><bpmn:outgoing>catch_{message}_f2</bpmn:outgoing>
    </bpmn:manualTask>
    <bpmn:sequenceFlow id="catch_{message}_f2" sourceRef="catch_{message}_task" targetRef="catch_{message}_end" />
    <bpmn:endEvent id="catch_{message}_end"><bpmn:incoming>catch_{message}_f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>"""


# Test-only stand-ins for the review variants (pep_review.bpmn, post16.bpmn, ...): each starts on its
# start message and holds the payload it was given.
CATCHER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="catcher_definitions" targetNamespace="http://example.org/pep-test">\n'
    + "".join(f'  <bpmn:message id="{m}" name="{m}" />\n' for m in VARIANTS)
    + "".join(_catcher_process(m) for m in VARIANTS)
    + "\n</bpmn:definitions>\n"
)


def bundle_with_catchers(*process_files: str, forms: tuple[str, ...] = ()):
    bundle = shipped_bundle(*process_files, forms=forms)
    bundle.add("processes/test_review_catchers.bpmn", CATCHER)
    return bundle


@pytest.fixture
def router(demo_council, engine):
    return Council(engine, demo_council).deployed(bundle_with_catchers("pep_cycle.bpmn"))


# ---- what the router did ------------------------------------------------------------------------


def cycle_due(council, child_id: str, **payload) -> Instance:
    """Throw pep_cycle_due for a child, as the end of a PEP does; return the router's instance."""
    started = council.send("pep_cycle_due", payload, child_id)
    assert len(started) == 1
    return started[0]


def next_review(council, router_instance: Instance) -> tuple[str, dict] | None:
    """The review the router started (its process id and the payload it received), or None."""
    following = council.started_by(router_instance.id)
    if not following:
        return None
    assert len(following) == 1
    started = [e for e in council.history(following[0].child_id, following[0].id) if e.kind == "instance_started"]
    return following[0].definition.process_id, started[0].data["data"]


def caught_payload(council, child_id: str) -> dict:
    """The payload as the next review sees it (its `review` variable)."""
    return council.view(council.only_task(child=child_id), "admin@council.test")["data"]["review"]


def router_state(council, instance_id: int) -> tuple[str, list[str]]:
    """The router's status and the elements it ran (from its history)."""
    return council.instance(instance_id).status, council.path(instance_id)


def routed(council, child_id, **payload) -> str | None:
    """Route a cycle and return the start message of the review that was started (None if none)."""
    instance = cycle_due(council, child_id, **payload)
    status, path = router_state(council, instance.id)
    assert status == "completed"
    found = next_review(council, instance)
    if found is None:
        return None
    message = found[0].removeprefix("catch_")
    assert f"throw_{message}" in path
    return message


# ---- the age rules ------------------------------------------------------------------------------


def test_a_primary_child_on_the_termly_variant_gets_the_next_termly_review_with_the_cycle_data(router, engine):
    instance = cycle_due(
        router, "Y5", variant="termly_review_due", next_meeting_date="2026-06-10", previous_targets=TARGETS
    )
    status, path = router_state(router, instance.id)
    assert status == "completed" and path[-1] == "throw_termly_review_due"
    process_id, payload = next_review(router, instance)
    expected = {"variant": "termly_review_due", "next_meeting_date": "2026-06-10", "previous_targets": TARGETS}
    assert process_id == "catch_termly_review_due" and payload == expected
    assert caught_payload(router, "Y5") == expected


def test_from_year_12_the_termly_variant_hands_over_to_the_post16_review(router, engine):
    assert (
        routed(router, "P16", variant="termly_review_due", next_meeting_date=None, previous_targets=TARGETS)
        == "post16_review_due"
    )
    assert caught_payload(router, "P16") == {
        "variant": "post16_review_due",
        "next_meeting_date": None,
        "previous_targets": TARGETS,
    }


def test_a_year_11_pupil_stays_termly_this_year(router, engine):
    assert (
        routed(router, "Y11", variant="termly_review_due", next_meeting_date="2026-06-10", previous_targets=[])
        == "termly_review_due"
    )


def test_age_is_taken_at_the_next_meeting_so_a_year_11_pupils_autumn_pep_is_post16(router, engine):
    """Y11 (born February 2010) is in Year 12 from September 2026: an autumn PEP set in the summer is post-16."""
    assert (
        routed(router, "Y11", variant="termly_review_due", next_meeting_date="2026-09-21", previous_targets=[])
        == "post16_review_due"
    )


def test_the_pp_plus_variant_keeps_a_school_age_child(router, engine):
    assert (
        routed(router, "Y6", variant="ppg_review_due", next_meeting_date=None, previous_targets=TARGETS)
        == "ppg_review_due"
    )
    assert caught_payload(router, "Y6")["variant"] == "ppg_review_due"


def test_the_pp_plus_variant_hands_a_post16_young_person_to_the_post16_review(router, engine):
    assert (
        routed(router, "P16", variant="ppg_review_due", next_meeting_date=None, previous_targets=[])
        == "post16_review_due"
    )


def test_the_post16_variant_continues_for_a_young_person_in_their_final_year(router, engine):
    """P18 turns 18 in January 2026: 2025-26 is the academic year they turn 18, so PEPs go on until July."""
    assert (
        routed(router, "P18", variant="post16_review_due", next_meeting_date="2026-06-15", previous_targets=TARGETS)
        == "post16_review_due"
    )


@pytest.mark.parametrize("child_id", ["EY3", "Y5", "P16", "P18"])
def test_the_all_ages_variant_keeps_every_age(router, engine, child_id):
    assert (
        routed(router, child_id, variant="all_ages_review_due", next_meeting_date=None, previous_targets=[])
        == "all_ages_review_due"
    )


@pytest.mark.parametrize("child_id", ["Y5", "P16"])
def test_the_word_form_variant_keeps_every_age(router, engine, child_id):
    assert (
        routed(router, child_id, variant="word_form_review_due", next_meeting_date=None, previous_targets=[])
        == "word_form_review_due"
    )


@pytest.mark.parametrize(
    "payload", [{"variant": "some_new_variant"}, {"variant": None}, {}], ids=["unknown", "null", "missing"]
)
def test_an_unknown_or_missing_variant_goes_to_the_termly_review(router, engine, payload):
    assert routed(router, "Y6", **payload) == "termly_review_due"
    assert caught_payload(router, "Y6") == {
        "variant": "termly_review_due",
        "next_meeting_date": None,
        "previous_targets": [],
    }


# ---- the end of PEPs ------------------------------------------------------------------------------


def test_peps_end_after_the_academic_year_in_which_the_young_person_turns_18(router, engine):
    """P18 (born January 2008) is past their final year by September 2026: no review, the VS is told."""
    instance = cycle_due(
        router, "P18", variant="post16_review_due", next_meeting_date="2026-09-20", previous_targets=TARGETS
    )
    status, path = router_state(router, instance.id)
    assert status == "completed" and path[-1] == "peps_end"
    assert next_review(router, instance) is None
    with router.sessions() as s:
        note = s.scalars(select(Notification).where(Notification.child_id == "P18")).one()
    assert (note.role_key, note.kind, note.subject) == (
        "vs_administrator",
        "notice",
        "PEPs for Emery Fictional have ended",
    )


@pytest.mark.parametrize("variant", ["termly_review_due", "all_ages_review_due"])
def test_without_a_next_meeting_date_the_age_today_decides_the_end(router, engine, clock, variant):
    clock.set("2026-09-07T09:00:00+00:00")
    assert routed(router, "P18", variant=variant, next_meeting_date=None, previous_targets=[]) is None


# ---- children under 2 ------------------------------------------------------------------------------


def test_a_child_under_two_waits_until_the_term_after_their_second_birthday(router, engine, clock):
    """EY2 turns 2 on 9 May 2026: the next PEP waits for the autumn term, starting Thursday 3 September."""
    instance = cycle_due(
        router, "EY2", variant="all_ages_review_due", next_meeting_date="2026-04-20", previous_targets=TARGETS
    )
    with router.sessions() as s:
        waiting = s.get(Instance, instance.id)
        # 00:00 London (BST) on 3 September 2026
        assert waiting.status == "running"
        assert waiting.next_timer_at.isoformat().startswith("2026-09-02T23:00:00")
    assert next_review(router, instance) is None
    clock.set("2026-09-02T22:59:00+00:00")
    assert fire_due_timers(engine, router.sessions).timers_fired == 0
    clock.set("2026-09-02T23:00:01+00:00")
    assert fire_due_timers(engine, router.sessions).timers_fired == 1
    status, path = router_state(router, instance.id)
    assert status == "completed" and "wait_until_two" in path and path[-1] == "throw_all_ages_review_due"
    # the meeting date set before the wait has passed: the review picks its own date in the new term
    assert caught_payload(router, "EY2") == {
        "variant": "all_ages_review_due",
        "next_meeting_date": None,
        "previous_targets": TARGETS,
    }


def test_after_the_wait_a_two_year_old_on_the_termly_variant_gets_the_termly_review(router, engine, clock):
    instance = cycle_due(router, "EY2", variant="termly_review_due", next_meeting_date=None, previous_targets=[])
    clock.set("2026-09-03T08:00:00+00:00")
    fire_due_timers(engine, router.sessions)
    assert next_review(router, instance)[0] == "catch_termly_review_due"


def test_a_two_year_old_is_not_kept_waiting(router, engine):
    """EY2's next meeting is after their 2nd birthday: the review is started at once."""
    assert (
        routed(router, "EY2", variant="termly_review_due", next_meeting_date="2026-05-20", previous_targets=[])
        == "termly_review_due"
    )


def test_a_leap_day_child_waits_for_the_term_after_1_march(router, engine, clock):
    with clocks.using(clock), router.sessions.begin() as s:
        add_child(s, "LEAP", "Lee Leap", date(2024, 2, 29), None)
        set_case_team(s, "LEAP", {"Social Worker": "sw@council.test"})
    clock.set("2026-02-20T09:00:00+00:00")
    instance = cycle_due(router, "LEAP", variant="termly_review_due", next_meeting_date=None, previous_targets=[])
    with router.sessions() as s:
        # summer term 2026 starts on Monday 13 April (00:00 BST)
        assert s.get(Instance, instance.id).next_timer_at.isoformat().startswith("2026-04-12T23:00:00")


def test_the_router_runs_unattended_and_links_the_next_review_to_it(router, engine):
    instance = cycle_due(router, "Y5", variant="termly_review_due", next_meeting_date=None, previous_targets=[])
    with router.sessions() as s:
        tasks = s.scalars(select(OpenTask).where(OpenTask.child_id == "Y5")).all()
        following = s.scalars(select(Instance).where(Instance.previous_instance_id == instance.id)).one()
    assert [t.instance_id for t in tasks] == [following.id]  # no task of the router's own
    assert following.started_by == "system"
