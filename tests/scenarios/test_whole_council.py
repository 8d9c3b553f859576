"""All the shipped diagrams and forms together, as a council deploys them: they validate as one bundle,
each message starts one process, and a child's PEPs chain from entering care through the router."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from engine.deploy import Bundle, deploy
from engine.models import Instance, OpenTask

from ..conftest import ROOT


@pytest.fixture
def whole_council(demo_council, clock):
    with demo_council.begin() as s:
        deployment, _ = deploy(s, Bundle.from_dirs(ROOT), actor="owner@council.test")
        return deployment


def test_every_shipped_diagram_and_form_deploys_as_one_bundle(whole_council):
    assert {d.process_id for d in whole_council.definitions} == {
        "initial_pep",
        "pep_cycle",
        "pep_review",
        "post16",
        "all_ages_review",
        "ppg_review",
        "word_form_review",
    }


def test_each_message_starts_exactly_one_process(whole_council):
    starts = Counter(m for d in whole_council.definitions for m in d.start_messages)
    assert starts == Counter(
        {
            "child_becomes_looked_after": 1,
            "pep_cycle_due": 1,
            "termly_review_due": 1,
            "post16_review_due": 1,
            "all_ages_review_due": 1,
            "ppg_review_due": 1,
            "word_form_review_due": 1,
        }
    )


def test_a_child_entering_care_gets_an_initial_pep_with_the_social_worker(whole_council, engine, demo_council):
    with demo_council.begin() as s:
        started = engine.send_message(
            s,
            "child_becomes_looked_after",
            "Y5",
            {
                "entry": "planned",
                "entered_care": "2026-03-02",
                "education_setting": "school",
                "school": "Oak Primary",
                "review_variant": "termly_review_due",
            },
        )
    assert [i.definition.process_id for i in started] == ["initial_pep"]
    with demo_council() as s:
        tasks = s.scalars(select(OpenTask).where(OpenTask.child_id == "Y5")).all()
    assert tasks and {t.role_key for t in tasks} == {"social_worker"}


@pytest.mark.parametrize(
    ("child_id", "variant", "expected"),
    [
        ("Y5", "termly_review_due", "pep_review"),
        ("Y6", "ppg_review_due", "ppg_review"),
        ("P16", "termly_review_due", "post16"),
        ("P16", "ppg_review_due", "post16"),
        ("Y11", "all_ages_review_due", "all_ages_review"),
        ("EY3", "word_form_review_due", "word_form_review"),
        ("Y5", "no_such_variant", "pep_review"),
    ],
)
def test_the_router_starts_the_right_review_linked_to_it(
    whole_council, engine, demo_council, child_id, variant, expected
):
    with demo_council.begin() as s:
        router = engine.send_message(
            s, "pep_cycle_due", child_id, {"variant": variant, "next_meeting_date": None, "previous_targets": []}
        )[0]
    with demo_council() as s:
        review = s.scalars(select(Instance).where(Instance.previous_instance_id == router.id)).one()
        assert review.definition.process_id == expected and review.status == "running"
        assert s.get(Instance, router.id).status == "completed"


def test_a_young_person_past_the_end_of_year_13_gets_no_further_pep(whole_council, engine, demo_council, clock):
    clock.set("2026-10-01T09:00:00+00:00")  # P18 (born January 2008) is in the school year they turn 19
    with demo_council.begin() as s:
        router = engine.send_message(
            s,
            "pep_cycle_due",
            "P18",
            {"variant": "termly_review_due", "next_meeting_date": None, "previous_targets": []},
        )[0]
    with demo_council() as s:
        assert s.scalars(select(Instance).where(Instance.previous_instance_id == router.id)).all() == []
        assert s.get(Instance, router.id).status == "completed"
