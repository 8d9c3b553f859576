"""Auditors: they see only the children granted to them, change nothing, and read a child's whole history
(timeline, replay, audit pack), every look of theirs written to the child's history."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.models import AccessGrant, CaseTeamMember, Event, Instance, OpenTask, User
from engine.people import add_user
from webui.audit_schemas import FrameSchema, PackSchema
from webui.grants import grant
from webui.timeline import callouts

from ..test_migration import REVIEW, at_complete_pep, deploy_edit, migrate, with_filing_step
from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from .conftest import PASSWORD_HASH
from .test_pep_document import pdf_pages

AUDITOR = "auditor@demo.test"


@pytest.fixture
def auditor(deployed_app, council, clock):
    """An auditor with no access yet."""
    with clocks.using(clock), council.begin() as s:
        add_user(
            s, AUDITOR, "Aud Inspector", roles=["Auditor"], organisation="Inspectorate"
        ).password_hash = PASSWORD_HASH
    return AUDITOR


def give(council, engine, child_id: str | None, expires_in: timedelta | None = None, email=AUDITOR) -> int:
    with council.begin() as s:
        user = s.scalar(select(User).where(User.email == email))
        expires = engine.now() + expires_in if expires_in is not None else None
        return grant(s, user, child_id, "Inspection, March 2026", expires, "admin@demo.test", engine.now()).id


def signed_off_review(engine, council, child_id="C001") -> int:
    """A termly review from start to QA sign-off, the teacher a day late."""
    instance_id = start_review(engine, council, child_id)
    complete(engine, council, only_task(council, child_id), "sw@demo.test", MEETING)
    engine.clock.set("2026-03-19T10:00:00+00:00")  # due 17 March: late
    complete(engine, council, only_task(council, child_id), "dt@demo.test", PEP)
    complete(engine, council, only_task(council, child_id), "ea@demo.test", {"rating": "Green", "feedback": "Clear."})
    return instance_id


def views(council, child_id="C001") -> list[str]:
    with council() as s:
        return [
            e.data["page"]
            for e in s.scalars(
                select(Event)
                .where(Event.child_id == child_id, Event.kind == "record_viewed", Event.actor == AUDITOR)
                .order_by(Event.seq)
            )
        ]


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


# ---- who sees what -----------------------------------------------------------------------------


def test_an_auditor_sees_only_the_child_granted_and_others_answer_404(auditor, browser, council, engine):
    give(council, engine, "C001")
    person = browser(AUDITOR)
    listing = text(person.get("/audit"))
    assert "Alex Example" in listing and "Blair Sample" not in listing
    assert person.get("/audit/children/C001").status_code == 200
    for url in (
        "/audit/children/C002",
        "/audit/children/C002/pack.pdf",
        "/audit/children/C002/pack.json",
        "/audit/children/C002/verification",
        "/children/C002",
    ):
        response = person.get(url)
        assert response.status_code == 404, url
        assert "Blair Sample" not in response.get_data(as_text=True)
    assert "Blair Sample" not in text(person.get("/children"))


def test_without_a_grant_in_force_an_auditor_sees_nobody(auditor, browser, council, engine):
    give(council, engine, "C001", expires_in=timedelta(hours=-1))
    revoked = give(council, engine, "C002")
    with council.begin() as s:
        s.get(AccessGrant, revoked).revoked_at = engine.now()
    person = browser(AUDITOR)
    assert person.get("/audit/children/C001").status_code == 404
    assert person.get("/audit/children/C002").status_code == 404
    assert "You have not been given access to any child" in text(person.get("/audit"))


def test_an_inspection_grant_covers_every_child_until_it_expires(auditor, browser, council, engine):
    give(council, engine, None, expires_in=timedelta(days=5))
    person = browser(AUDITOR)
    assert all(person.get(f"/audit/children/{c}").status_code == 200 for c in ("C001", "C002"))
    engine.clock.set("2026-03-09T09:00:00+00:00")
    person = browser(AUDITOR)  # a week later, signed in again
    assert person.get("/audit/children/C001").status_code == 404


def test_the_audit_pages_are_for_auditors_and_the_vs_administrator(auditor, browser):
    assert browser("dt@demo.test").get("/audit").status_code == 403
    assert browser("sw@demo.test").get("/audit/children/C001").status_code == 403
    assert browser("admin@demo.test").get("/audit/children/C002").status_code == 200


def test_an_auditor_changes_nothing_anywhere(auditor, browser, council, engine):
    start_review(engine, council)
    task = only_task(council)
    give(council, engine, "C001")
    person = browser(AUDITOR)
    form = {"meeting_date-day": "10", "meeting_date-month": "3", "meeting_date-year": "2026", "venue": "Room 2"}
    attempts = {
        f"/tasks/{task.id}": {**form, "_do": "submit"},
        f"/tasks/{task.id}/claim": {},
        f"/tasks/{task.id}/release": {},
        f"/tasks/{task.id}/link": {},
        "/children/C001/changes/meeting_rescheduled": {"meeting_date": "2026-03-20", "reason": "Carer ill"},
        "/admin/users": {"email": "new@demo.test", "name": "New Person"},
        "/admin/children/C001/team": {"social_worker": AUDITOR},
        "/admin/grants": {"scope": "all", "reason": "Me"},
        "/admin/children/new": {"child_id": "C009", "name": "New Child"},
        "/account/password": {},
    }
    with council() as s:
        before = s.scalar(select(Event.seq).where(Event.child_id == "C001").order_by(Event.seq.desc()).limit(1))
    for url, data in attempts.items():
        assert person.post(url, data, page_url="/audit").status_code in (403, 422), url
    with council() as s:
        assert s.get(OpenTask, task.id) is not None and s.scalars(select(AccessGrant)).one().child_id == "C001"
        assert s.get(CaseTeamMember, ("C001", "social_worker")).user_id != s.scalar(
            select(User.id).where(User.email == AUDITOR)
        )
        assert s.scalar(select(User).where(User.email == "new@demo.test")) is None
        written = s.scalars(select(Event).where(Event.child_id == "C001", Event.seq > before)).all()
    assert {e.kind for e in written} <= {"record_viewed"}
    assert person.post("/sign-out", page_url="/audit").status_code == 302


def test_the_childs_record_offers_an_auditor_nothing_to_do(auditor, browser, council, engine):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)  # the review now takes a new date
    with council.begin() as s:
        engine.start(s, "test_views", "C001")  # the young person's views, by single-use link
    give(council, engine, "C001")
    offered = text(browser("sw@demo.test").get("/children/C001"))
    assert "Report a change" in offered and "Create a single-use link" in offered
    page = text(browser(AUDITOR).get("/children/C001"))
    assert "Complete the PEP" in page
    assert "Report a change" not in page and "Create a single-use link" not in page


# ---- the timeline ------------------------------------------------------------------------------


def test_the_timeline_says_who_did_what_and_when_with_answers_changes_and_deadlines(auditor, browser, council, engine):
    signed_off_review(engine, council)
    give(council, engine, "C001")
    page = text(browser(AUDITOR).get("/audit/children/C001"))
    assert "Verified" in page
    assert "Started Test termly review (version 1)" in page
    assert "“Arrange the PEP meeting” assigned to Sam Social-Worker (Social Worker)" in page
    assert "Completed “Complete the PEP”" in page and "Dana Teacher (Designated Teacher)" in page
    assert "Erin Adviser (VS Education Adviser)" in page and "QA rating: Green" in page
    assert "Deadline missed" in page and "due 17 March 2026, 11:59pm" in page
    assert "2 March 2026, 9am" in page  # UK time
    assert "Meeting date" in page and "10 March 2026" in page  # the answer and the change it made
    assert "Gave Aud Inspector audit access: Inspection, March 2026" in page
    assert "Viewed the record (audit timeline)" in page


def test_the_timeline_filters_by_kind_person_pep_and_date(auditor, browser, council, engine):
    instance_id = signed_off_review(engine, council)
    give(council, engine, "C001")
    person = browser(AUDITOR)

    def seqs(**params):
        page = person.get("/audit/children/C001", query_string=params, headers={"HX-Request": "true"})
        body = page.get_data(as_text=True)
        assert "<html" not in body  # htmx asks for the rows only
        return re.findall(r'data-kind="([a-z_]+)"', body)

    assert seqs(kind="task_completed") == ["task_completed"] * 3
    assert set(seqs(person="ea@demo.test")) == {"task_completed", "instance_completed"}
    assert "record_viewed" not in seqs(instance=str(instance_id))
    assert seqs(**{"from": "2026-03-19", "kind": "task_completed"}) == ["task_completed"] * 2
    assert seqs(**{"to": "2026-03-01"}) == []


def test_a_reassignment_of_the_case_team_is_in_the_timeline(auditor, browser, council, engine):
    give(council, engine, "C001")
    admin = browser("admin@demo.test")
    page = admin.get("/admin/children/C001/team")
    with council() as s:
        team = {
            m.role_key: s.get(User, m.user_id).email
            for m in s.scalars(select(CaseTeamMember).where(CaseTeamMember.child_id == "C001"))
        }
    response = admin.post(
        "/admin/children/C001/team",
        {**team, "designated_teacher": "other.dt@demo.test"},
        page_url="/admin/children/C001/team",
    )
    assert page.status_code == 200 and response.status_code == 302
    assert "Reassigned Designated Teacher from Dana Teacher to Omar Teacher" in text(
        browser(AUDITOR).get("/audit/children/C001")
    )


@pytest.mark.tampered
def test_a_tampered_history_is_shown_not_to_verify(auditor, browser, council, engine):
    signed_off_review(engine, council)
    give(council, engine, "C001")
    with council.begin() as s:
        event = s.scalar(select(Event).where(Event.child_id == "C001", Event.kind == "task_completed").limit(1))
        event.data = {**event.data, "data": {**event.data["data"], "venue": "Somewhere else"}}
        seq = event.seq
    person = browser(AUDITOR)
    page = text(person.get("/audit/children/C001"))
    assert "Does not verify" in page and f"event #{seq}" in page
    assert f"event #{seq}" in text(person.get("/audit/children/C001/verification", headers={"HX-Request": "true"}))


def test_the_councils_forms_mark_qa_ratings_and_pp_plus_decisions_for_auditors():
    submitted = {
        "qa_rating": "Amber",
        "rating": "Green",
        "pp_plus_decision": "Approve part",
        "pp_plus_approved_amount": 500,
        "exceptional_decision": "refused",
        "vs_agrees_ppg": False,
        "qa_feedback": "Targets need dates.",
    }
    properties = {}
    for path in (Path(__file__).parents[2] / "forms").glob("*.json"):
        properties |= {k: v for k, v in json.loads(path.read_text()).get("properties", {}).items() if k in submitted}
    assert set(properties) == set(submitted)  # the names the councils' forms use
    assert callouts(submitted, {"properties": properties}) == [
        "QA rating: Amber",
        "QA rating: Green",
        "PP+ decision: Approve part",
        "PP+ amount approved: 500",
        "PP+ decision: refused",
        "Virtual School agrees the PP+ spend: No",
    ]


# ---- replay and pack ---------------------------------------------------------------------------


def test_the_replay_page_holds_each_events_path_waiting_tasks_and_data(auditor, browser, council, engine):
    instance_id = signed_off_review(engine, council)
    give(council, engine, "C001")
    page = browser(AUDITOR).get(f"/audit/children/C001/instances/{instance_id}/replay").get_data(as_text=True)
    payload = json.loads(re.search(r'id="replay-frames">(.*?)</script>', page, re.S).group(1))
    frames = payload["frames"]
    assert FrameSchema(many=True).validate(frames) == {}
    assert {f["instance_id"] for f in frames} == {instance_id}
    first = frames[0]
    assert first["kind"] == "instance_started" and "arrange_meeting" in first["active"]
    arranged = next(f for f in frames if f["kind"] == "task_completed")
    assert "arrange_meeting" in arranged["completed"] and arranged["data"]["venue"] == MEETING["venue"]
    assert frames[-1]["active"] == [] and "done" in frames[-1]["completed"]
    (diagram,) = payload["diagrams"]
    assert diagram["version"] == 1 and 'id="arrange_meeting"' in diagram["xml"]


def test_a_pep_moved_to_a_new_version_replays_on_each_version_in_turn(auditor, browser, council, engine):
    instance_id = at_complete_pep(engine, council)
    version = deploy_edit(council, "processes/review.bpmn", with_filing_step(REVIEW))
    migrate(engine, council, instance_id, "test_review", version)
    give(council, engine, "C001")
    person = browser(AUDITOR)
    assert "Moved from version 1 to version 2" in text(person.get("/audit/children/C001"))
    page = person.get(f"/audit/children/C001/instances/{instance_id}/replay").get_data(as_text=True)
    payload = json.loads(re.search(r'id="replay-frames">(.*?)</script>', page, re.S).group(1))
    assert [d["version"] for d in payload["diagrams"]] == [1, 2] and "file_pep" in payload["diagrams"][1]["xml"]
    versions = [f["definition_id"] for f in payload["frames"]]
    moved = next(i for i, f in enumerate(payload["frames"]) if f["kind"] == "instance_migrated")
    assert set(versions[:moved]) == {payload["diagrams"][0]["definition_id"]}
    assert set(versions[moved:]) == {payload["diagrams"][1]["definition_id"]}


def test_the_audit_pack_as_json_and_pdf(auditor, browser, council, engine):
    instance_id = signed_off_review(engine, council)
    give(council, engine, "C001")
    person = browser(AUDITOR)
    response = person.get("/audit/children/C001/pack.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    pack = response.get_json()
    assert PackSchema().validate(pack) == {}
    assert pack["child"]["id"] == "C001" and pack["verification"]["ok"] is True
    assert pack["verification"]["head_hash"] == pack["events"][-1]["hash"]  # the download itself is the last event
    assert pack["events"][-1]["data"]["page"] == "audit pack (JSON)"
    assert all(e["prev_hash"] == p["hash"] for p, e in zip(pack["events"], pack["events"][1:], strict=False))
    (pep,) = pack["instances"]
    assert (pep["id"], pep["version"], pep["status"]) == (instance_id, 1, "completed")
    assert [s["title"] for s in pep["pep"]] == ["Arrange the PEP meeting", "Complete the PEP", "Quality-assure the PEP"]
    pdf = person.get("/audit/children/C001/pack.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    pages = pdf_pages(pdf.data)
    assert len(pages) >= 2  # the timeline, then the PEP on a page of its own
    for number, text in enumerate(pages, start=1):
        assert text.count("OFFICIAL-SENSITIVE") == 2, number  # at the top and at the foot
        assert f"Page {number} of {len(pages)}" in text, number


def test_every_look_of_an_auditor_is_written_to_the_childs_history(auditor, browser, council, engine):
    instance_id = signed_off_review(engine, council)
    give(council, engine, "C001")
    person = browser(AUDITOR)
    for url in (
        "/audit/children/C001",
        f"/audit/children/C001/instances/{instance_id}/replay",
        "/audit/children/C001/verification",
        "/audit/children/C001/pack.pdf",
        "/audit/children/C001/pack.json",
        "/children/C001",
    ):
        assert person.get(url).status_code == 200, url
    assert views(council) == [
        "audit timeline",
        "audit replay",
        "audit verification",
        "audit pack (PDF)",
        "audit pack (JSON)",
        "child",
    ]
    with council() as s:
        assert s.scalar(select(Instance.status).where(Instance.id == instance_id)) == "completed"


# ---- grants by the VS administrator -------------------------------------------------------------


def test_the_vs_administrator_grants_and_revokes_access_with_reasons_in_the_childs_history(auditor, browser, council):
    admin = browser("admin@demo.test")
    refused = admin.post(
        "/admin/grants", {"auditor": AUDITOR, "scope": "child", "child_id": "C001"}, page_url="/admin/grants"
    )
    assert refused.status_code == 422 and "Enter why the auditor needs access" in text(refused)
    given = admin.post(
        "/admin/grants",
        {
            "auditor": AUDITOR,
            "scope": "child",
            "child_id": "C001",
            "reason": "Complaint ref 42",
            "expires-day": "31",
            "expires-month": "3",
            "expires-year": "2026",
        },
        page_url="/admin/grants",
    )
    assert given.status_code == 302
    assert browser(AUDITOR).get("/audit/children/C001").status_code == 200
    with council() as s:
        row = s.scalars(select(AccessGrant)).one()
        assert row.expires_at.isoformat() == "2026-03-31T23:00:00+00:00"  # end of 31 March, London summer time
    admin.post(f"/admin/grants/{row.id}/revoke", {"reason": "Complaint closed"}, page_url="/admin/grants")
    assert browser(AUDITOR).get("/audit/children/C001").status_code == 404
    with council() as s:
        kinds = [
            (e.kind, e.data.get("reason"))
            for e in s.scalars(
                select(Event).where(Event.child_id == "C001", Event.kind.like("access_%")).order_by(Event.seq)
            )
        ]
    assert kinds == [("access_granted", "Complaint ref 42"), ("access_revoked", "Complaint closed")]
