"""The PP+ ledger of PEPs on the good-practice review (processes/ppg_review.bpmn), where the PPG is agreed
at the meeting, additional funding goes to the VS Head, and the PPG is released on the Virtual School's
final sign-off: a small council with known cases (all synthetic), its exact ledger, and the ledger equal
to a recomputation from the histories.

- Blair (Y6, Elm Academy), autumn term 2025: £500 agreed at the meeting on 8 October 2025 (£200, £200,
  £100); the Virtual School disagrees (refused, nothing released), the designated teacher amends the
  targets asking £450 (£200, £150, £100), the Virtual School agrees: £450 approved and released.
- Alex (Y5, Oak Primary), spring term 2026: £500 agreed at the meeting on 10 March 2026 and £800 of
  additional funding applied for; the VS Head approves £600 of it; the Virtual School agrees the PPG:
  £1,100 approved and released.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import ppplus, ppplusledger
from engine.models import PpplusEntry
from tests.conftest import shipped_bundle
from tests.helpers import Council
from tests.scenarios.test_ppg_review import (
    ARRANGE,
    DT,
    DT_SECTION,
    DT_SIGN,
    EA,
    PREPARE,
    RECORD,
    SW,
    SW_SECTION,
    SW_SIGN,
    VS_AGREE,
    VSH,
    Y6_DT,
    start,
    targets,
)


@pytest.fixture
def ppg(demo_council, engine):
    return Council(engine, demo_council).deployed(shipped_bundle("ppg_review.bpmn", forms=("ppg_",)))


AUTUMN_TARGETS = targets(("2025-12-12",) * 3)
AUTUMN_SIGN = {**SW_SIGN, "next_meeting_date": "2026-01-21"}


def blair_in_the_autumn(council):
    council.engine.clock.set("2025-09-15T09:00:00+00:00")
    start(council, "Y6")
    council.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2025-10-08"}, "Y6")
    council.do("prepare_targets", Y6_DT, {**PREPARE, "targets": AUTUMN_TARGETS}, "Y6")
    council.engine.clock.set("2025-10-08T15:00:00+00:00")
    council.do("hold_meeting", Y6_DT, {**RECORD, "targets": AUTUMN_TARGETS}, "Y6")
    council.do("dt_section", Y6_DT, DT_SECTION, "Y6")
    council.do("sw_section", SW, SW_SECTION, "Y6")
    council.do("dt_sign_off", Y6_DT, DT_SIGN, "Y6")
    council.do("sw_sign_off", SW, AUTUMN_SIGN, "Y6")
    council.do(
        "vs_sign_off",
        EA,
        {"vs_agrees_targets": False, "vs_agrees_ppg": True, "vs_feedback": "Tuition costs less than asked"},
        "Y6",
    )
    amended = targets(("2025-12-12",) * 3, amounts=(200, 150, 100))
    council.do(
        "amend_targets",
        Y6_DT,
        {"targets": amended, "ppg_total": 450, "amendment_summary": "Tuition at its real cost"},
        "Y6",
    )
    council.do("dt_sign_off", Y6_DT, DT_SIGN, "Y6")
    council.do("sw_sign_off", SW, AUTUMN_SIGN, "Y6")
    council.do("vs_sign_off", EA, VS_AGREE, "Y6")


def alex_in_the_spring(council):
    council.engine.clock.set("2026-03-02T09:00:00+00:00")
    start(council, "Y5")
    council.do("arrange_meeting", SW, ARRANGE)
    council.do("prepare_targets", DT, PREPARE)
    council.engine.clock.set("2026-03-10T15:00:00+00:00")
    council.do(
        "hold_meeting",
        DT,
        {
            **RECORD,
            "exceptional_funding_requested": True,
            "exceptional_funding_amount": 800,
            "exceptional_funding_reason": "Specialist dyslexia assessment",
        },
    )
    council.do(
        "decide_exceptional_funding",
        VSH,
        {
            "exceptional_decision": "approved",
            "exceptional_amount_approved": 600,
            "exceptional_decision_reason": "Assessment is essential",
        },
    )
    for spec_id, actor, data in (
        ("dt_section", DT, DT_SECTION),
        ("sw_section", SW, SW_SECTION),
        ("dt_sign_off", DT, DT_SIGN),
        ("sw_sign_off", SW, SW_SIGN),
        ("vs_sign_off", EA, VS_AGREE),
    ):
        council.do(spec_id, actor, data)


def lines(council, child):
    with council.sessions() as s:
        return [
            (r.entry, r.decision, r.amount_pence, r.term)
            for r in s.scalars(select(PpplusEntry).where(PpplusEntry.child_id == child).order_by(PpplusEntry.seq))
        ]


def test_the_ppg_review_gives_the_exact_ledger_and_equals_a_recomputation_from_history(ppg, engine):
    blair_in_the_autumn(ppg)
    alex_in_the_spring(ppg)
    autumn, spring = "2025-26 autumn", "2025-26 spring"
    assert lines(ppg, "Y6") == [
        ("requested", None, 20000, autumn),
        ("requested", None, 20000, autumn),
        ("requested", None, 10000, autumn),
        ("decided", "refused", 0, autumn),
        ("requested", None, 20000, autumn),
        ("requested", None, 15000, autumn),
        ("requested", None, 10000, autumn),
        ("decided", "approved", 45000, autumn),
        ("released", None, 45000, autumn),
    ]
    assert lines(ppg, "Y5") == [
        ("requested", None, 80000, spring),  # the additional funding applied for
        ("requested", None, 20000, spring),
        ("requested", None, 20000, spring),
        ("requested", None, 10000, spring),
        ("decided", "approved", 60000, spring),  # by the VS Head
        ("decided", "approved", 50000, spring),  # the PPG, at the Virtual School's sign-off
        ("released", None, 110000, spring),
    ]
    with ppg.sessions() as s:
        found = ppplusledger.ledger(s, "2025-26")
        assert found.totals == {"requested": 175000, "approved": 155000, "released": 155000}
        by_child = {c.child_id: (c.requested, c.approved, c.released) for c in ppplusledger.children(s, found)}
        assert (by_child["Y6"], by_child["Y5"]) == ((45000, 45000, 45000), (130000, 110000, 110000))
        assert [(school, term, figure["released"]) for school, term, figure in found.by_school_term] == [
            ("Elm Academy", autumn, 45000),
            ("Oak Primary", spring, 110000),
        ]
        assert ppplus.differences(s) == []
        kept = sorted(
            (r.child_id, r.seq, r.entry, r.decision, r.amount_pence, r.source) for r in s.scalars(select(PpplusEntry))
        )
        again = sorted(
            (r["child_id"], r["seq"], r["entry"], r.get("decision"), r["amount"], r["source"])
            for r in ppplus.recompute(s)
        )
        assert kept == again and len(kept) == 16
    with ppg.sessions.begin() as s:
        assert ppplus.backfill(s) == 16
    assert lines(ppg, "Y6")[-1] == ("released", None, 45000, autumn)
