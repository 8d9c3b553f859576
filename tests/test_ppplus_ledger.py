"""The PP+ ledger and the quality figures of a small council with known cases (all synthetic).

Three children on the all-ages review, spring term 2025-26 (meetings on 18 March 2026):
- Alex (Y5, Oak Primary): £300 asked for one target, rated Green, approved in full: £300 released;
  the PEP runs on to its end (filed, the review record updated).
- Blair (Y6, Elm Academy): £300 + £150 asked for, rated Red (sent back), then Amber; £200 of £450
  approved: £200 released.
- Casey (Y11, Elm Academy): £300 asked for, rated Amber with the child's voice not evident; refused.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import ppplus, ppplusledger
from engine.models import PpplusEntry
from engine.quality import academic_year_bounds, quality
from tests.conftest import seat_case_team
from tests.helpers import Council
from tests.scenarios.test_all_ages_review import (
    CALL,
    EA,
    FILED,
    GREEN,
    PREPOPULATED,
    RECORD,
    REVIEW,
    SEND,
    SW,
    TARGETS,
    VIEWS,
    VSH,
    YP,
    _deploy,
    held,
    start,
)

EA2 = "ea2@council.test"
DTS = {"Y5": "dt@oak.test", "Y6": "dt@elm.test", "Y11": "dt@elm.test"}
TUITION = {**TARGETS[1], "what": "Maths tuition twice a week", "category": "Academic", "pp_plus_amount": 150}


def record(council, child, targets):
    council.engine.clock.set("2026-03-02T09:00:00+00:00")  # each child's PEP from the start of the fortnight
    start(council, child)
    council.do("call_meeting", SW if child == "Y5" else ("sw2@council.test" if child == "Y11" else SW), CALL, child)
    council.do("student_views_sheet", YP, VIEWS, child)
    council.do("prepopulate_pep", DTS[child], PREPOPULATED, child)
    held(council.engine, CALL["meeting_date"])
    council.do("record_meeting", DTS[child], {**RECORD, "targets": targets}, child)


def small_council(engine, sessions):
    """The three PEPs of the module's docstring."""
    with sessions.begin() as s:
        for child in ("Y6", "Y11"):
            seat_case_team(s, child, {"Young Person": YP})
    council = Council(engine, sessions)
    record(council, "Y5", TARGETS)
    council.do("qa_pep", EA, GREEN, "Y5")
    council.do("approve_pp_plus", VSH, {"pp_plus_decision": "Approve"}, "Y5")
    council.do("send_pep_to_sw", EA, SEND, "Y5")
    council.do("file_on_liquid_logic", SW, FILED, "Y5")
    council.do("update_review_record", SW, REVIEW, "Y5")

    record(council, "Y6", [TARGETS[0], TUITION])
    council.do(
        "qa_pep",
        EA2,
        {**GREEN, "rating": "Red", "targets_smart": False, "qa_feedback": "Targets need a measure."},
        "Y6",
    )
    council.do("record_meeting", DTS["Y6"], {**RECORD, "targets": [TARGETS[0], TUITION]}, "Y6")
    council.do("qa_pep", EA2, {**GREEN, "rating": "Amber", "qa_feedback": "Better."}, "Y6")
    council.do(
        "approve_pp_plus",
        VSH,
        {
            "pp_plus_decision": "Approve part",
            "pp_plus_approved_amount": 200,
            "pp_plus_decision_reason": "Tuition is capped.",
        },
        "Y6",
    )

    record(council, "Y11", TARGETS)
    council.do(
        "qa_pep",
        EA,
        {**GREEN, "rating": "Amber", "child_voice_evident": False, "qa_feedback": "Put the student views first."},
        "Y11",
    )
    council.do(
        "approve_pp_plus",
        VSH,
        {"pp_plus_decision": "Refuse", "pp_plus_decision_reason": "Not linked to an assessed need."},
        "Y11",
    )


@pytest.fixture
def council(demo_council, engine):
    _deploy(demo_council, engine)
    return demo_council


@pytest.fixture
def known(council, engine):
    small_council(engine, council)
    return council


def lines(sessions, child=None):
    with sessions() as s:
        query = select(PpplusEntry).order_by(PpplusEntry.child_id, PpplusEntry.seq)
        if child:
            query = query.where(PpplusEntry.child_id == child)
        return [(r.entry, r.decision, r.amount_pence, r.category, r.purpose) for r in s.scalars(query)]


def test_each_request_decision_and_release_is_a_line_of_the_ledger(known):
    assert lines(known, "Y5") == [
        ("requested", None, 30000, "Academic", "Read aloud with a buddy three times a week"),
        ("decided", "approved", 30000, None, None),
        ("released", None, 30000, None, None),
    ]
    assert lines(known, "Y6") == [
        ("requested", None, 30000, "Academic", "Read aloud with a buddy three times a week"),
        ("requested", None, 15000, "Academic", "Maths tuition twice a week"),
        ("requested", None, 30000, "Academic", "Read aloud with a buddy three times a week"),
        ("requested", None, 15000, "Academic", "Maths tuition twice a week"),
        ("decided", "part", 20000, None, None),
        ("released", None, 20000, None, None),
    ]
    assert lines(known, "Y11")[1:] == [("decided", "refused", 0, None, None)]
    with known() as s:
        row = s.scalars(select(PpplusEntry).where(PpplusEntry.child_id == "Y6")).first()
        assert (row.financial_year, row.term, row.school) == ("2025-26", "2025-26 spring", "Elm Academy")


def test_a_pep_asked_again_counts_its_latest_request(known):
    with known() as s:
        rows = [
            {
                "child_id": r.child_id,
                "instance_id": r.instance_id,
                "entry": r.entry,
                "source": r.source,
                "step_seq": r.step_seq,
                "amount": r.amount_pence,
            }
            for r in s.scalars(select(PpplusEntry))
        ]
    assert ppplusledger.figures([r for r in rows if r["child_id"] == "Y6"]) == {
        "requested": 45000,
        "approved": 20000,
        "released": 20000,
    }
    assert ppplusledger.figures(rows) == {"requested": 105000, "approved": 50000, "released": 50000}


def test_the_ledger_reconciles_exactly_with_the_histories_and_is_rebuilt_from_them(known):
    with known() as s:
        assert ppplus.differences(s) == []
    before = lines(known)
    with known.begin() as s:
        assert ppplus.backfill(s) == len(before)
    assert lines(known) == before
    with known() as s:
        assert ppplus.differences(s) == []


def test_quality_by_term_school_and_adviser_with_the_loops_and_the_criteria_failed(known):
    with known() as s:
        found = quality(s, *academic_year_bounds("2025-26"))
    assert found.by("term") == {"2025-26 spring": {"Green": 1, "Red": 1, "Amber": 2}}
    assert found.by("school") == {"Elm Academy": {"Red": 1, "Amber": 2}, "Oak Primary": {"Green": 1}}
    assert found.by("adviser") == {"Eli Adviser": {"Red": 1, "Amber": 1}, "Erin Adviser": {"Green": 1, "Amber": 1}}
    assert found.criteria[:2] == [
        ("Are the targets SMART?", 1, 4),
        ("Is the young person's voice evident and central?", 1, 4),
    ]
    # each PEP is signed off when the adviser accepts it (Green or Amber); Blair's was sent back once first
    assert (found.signed_off, found.returned, found.returns) == (3, 1, 1)


def test_the_council_allocation_is_configured_per_financial_year():
    allocation = ppplusledger.allocation("2025-26")
    assert (allocation.per_child, allocation.top_slice, allocation.devolved) == (263000, 50000, 213000)
    assert ppplus.financial_year("2026-03-31T22:00:00+00:00") == "2025-26"  # 31 March, 23:00 London
    assert ppplus.financial_year("2026-03-31T23:30:00+00:00") == "2026-27"  # 1 April, 00:30 BST
    assert date(2026, 4, 1).isoformat() == "2026-04-01"


def test_the_years_figures_children_and_flags_follow_the_allocation(known, monkeypatch):
    """With a devolved £300 (capped at £300), Alex's school has had all of it: only Blair and Casey,
    and every other child in care, are flagged; the pages of the children flagged hold the same."""
    small = ppplusledger.Allocation("2025-26", 50000, 20000, cap=30000)
    monkeypatch.setattr(ppplusledger, "allocations", lambda path=None: {"2025-26": small})
    with known() as s:
        found = ppplusledger.ledger(s, "2025-26")
        every = ppplusledger.children(s, found)
        flagged = [c.child_id for c in every if c.flags]
        assert found.unlike == ["Y5"] and "Y5" not in flagged and {"Y6", "Y11"} <= set(flagged)
        assert (found.counted, found.flagged) == (len(every), len(flagged))
        assert [c.child_id for c in ppplusledger.flagged_page(s, found, 1).rows] == flagged[:50]
        by_child = {c.child_id: (c.approved, c.released, c.flags) for c in every}
        assert by_child["Y6"] == (20000, 20000, ["unspent"]) and by_child["Y5"] == (30000, 30000, [])
    monkeypatch.setattr(ppplusledger, "LISTED", 0)  # too many to name: the children read in order
    with known() as s:
        found = ppplusledger.ledger(s, "2025-26")
        assert found.unlike is None
        assert [c.child_id for c in ppplusledger.flagged_page(s, found, 1).rows] == flagged[:50]
