"""`python -m benchmarks oversight`: the Virtual School's oversight pages on a database grown to many open
PEPs, each page's p95 as the VS administrator sees it (docs/benchmarks.md).

A few real PEPs are run by the engine (the statutory test processes: a termly review and an initial
PEP), then copied by benchmarks/bulk.py; each copy gets a projection row like its source's, with its
due date, meeting and sign-off spread over the school year (on time, late, overdue and not yet due),
as the steps would have written them. Beside them, a year of other children (`--year-children`): each
with the history of the year's termly PEPs, completed, and their projection rows; a third came into care
during the year and a third left it (the history written as the steps would, a few events a PEP, not
by running the engine 10,000 times). Then each page and export is asked for through the app, in process.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import bindparam, func, insert, select, text

from engine import calendar, groupkeys, projection, qualityrows
from engine import clock as clocks
from engine.db import make_db, session_factory
from engine.deploy import Bundle, deploy
from engine.models import (
    Base,
    CaseTeamMember,
    Child,
    Event,
    Instance,
    PepProjection,
    PpplusEntry,
    ProcessDefinition,
    User,
)
from engine.people import add_child, add_user
from engine.quality import CRITERION_KEY, RATING_KEY
from engine.roles import seed_roles
from engine.runtime import Engine

from .bulk import INSERT_INSTANCE, copy_instances
from .measure import Samples

BUNDLES = ("tests/bundles/basic", "tests/bundles/statutory")
NOW = "2026-03-02T09:00:00+00:00"
SCHOOLS = [f"School {n}" for n in range(120)]
PAGES = (
    "/oversight/timeliness",
    "/oversight/timeliness?period=2025-26",
    "/oversight/timeliness?period=2025-26&by=school",
    "/oversight/timeliness?period=2025-26&by=social_worker",
    "/oversight/timeliness?period=2025-26&by=social_worker&page=2",
    "/oversight/timeliness?period=2025-26&by=social_worker&q=worker+12",
    "/oversight/timeliness?period=2025-26&by=age_band",
    "/oversight/timeliness?by=social_worker",
    "/oversight/timeliness?period=2025-26+spring&by=designated_teacher",
    "/oversight/timeliness/children?period=2025-26&figure=overdue&by=school&value=School+7",
    "/oversight/timeliness/children?period=2025-26&figure=not_reviewed&term=2025-26+spring&by=school&value=School+7",
    "/oversight/overdue?days=30",
    "/oversight/overdue?school=School+7",
    "/oversight/timeliness.csv?period=2025-26&by=school",
    "/oversight/timeliness.xlsx?period=2025-26&by=school",
    "/oversight/timeliness.csv?period=2025-26&by=social_worker",
    "/oversight/timeliness.xlsx?period=2025-26&by=social_worker",
    "/oversight/timeliness/children.csv?period=2025-26&figure=overdue&by=school&value=School+7",
    "/oversight/overdue.csv?days=30",
    "/oversight/quality/annual-report.xlsx?year=2025-26",
    "/oversight/quality?year=2025-26",
    "/oversight/quality.csv?year=2025-26",
    "/oversight/quality.xlsx?year=2025-26",
    "/oversight/ppplus?year=2025-26",
    "/oversight/ppplus?year=2025-26&page=2",
    "/oversight/ppplus.csv?year=2025-26",
    "/oversight/ppplus.xlsx?year=2025-26",
    "/oversight/quality/annual-report.pdf?year=2025-26",
)
QA_FORM = "review_quality_assure.schema.json"  # the council's QA of a termly review (processes/pep_review.bpmn)
EXTRA_FORMS = {"tests/bundles/statutory": (QA_FORM,)}
ADVISERS = 40
EXPORT_REPEATS = 3  # an export of every group is asked for less often than a page, and takes longer
YEAR_TERMS = ("2025-26 autumn", "2025-26 spring", "2025-26 summer")


def grow(url: str, instances: int, year_children: int = 10_000, seed: int = 2026) -> None:
    """An empty database filled: staff, 40 children with real PEPs, then `instances` copies of them,
    and `year_children` other children with a year of completed PEPs."""
    db = make_db(url)
    Base.metadata.drop_all(db)
    Base.metadata.create_all(db)
    sessions, clock = session_factory(db), clocks.FrozenClock(NOW)
    engine = Engine(clock)
    with clocks.using(clock), sessions.begin() as s:
        seed_roles(s)
        add_user(s, "sw@bench.test", "Sam Social-Worker")
        add_user(s, "dt@bench.test", "Dana Teacher")
        add_user(s, "admin@bench.test", "Ash Administrator", roles=["VS Administrator"])
        for bundle in BUNDLES:
            files = Bundle.from_dirs(bundle)
            for form in EXTRA_FORMS.get(bundle, ()):  # the QA form the year's QA results were given on
                files.add(f"forms/{form}", Path("forms", form).read_text(encoding="utf-8"))
            deploy(s, files, actor="owner@bench.test")
        from tests.conftest import seat_case_team

        for n in range(40):
            add_child(s, f"R{n:03d}", f"Real child {n}", date(2010 + n % 12, 1 + n % 12, 1), SCHOOLS[n % len(SCHOOLS)])
            seat_case_team(s, f"R{n:03d}", {"Social Worker": "sw@bench.test", "Designated Teacher": "dt@bench.test"})
    with sessions.begin() as s:
        for n in range(40):
            engine.start(
                s,
                "test_termly" if n % 4 else "test_initial_own_timer",
                f"R{n:03d}",
                actor="sw@bench.test",
                data={"entered_care": "2026-02-23"},
            )
    copy_instances(sessions, instances, with_timer=False, prefix="B")
    _project_copies(sessions, random.Random(seed))
    _year_of_children(sessions, year_children, random.Random(seed + 1))
    _year_of_quality(sessions, random.Random(seed + 2))
    _year_of_ppplus(sessions, random.Random(seed + 3))
    with sessions.begin() as s:  # the copies' schools and teams went in as rows: their keys, as an import's
        groupkeys.refile(s)
        groupkeys.rereview(s)  # and the terms each was reviewed in, as the steps would have kept them
    if db.dialect.name == "postgresql":  # the grown tables compacted (copies written twice), statistics gathered
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM FULL"))
            connection.execute(text("VACUUM ANALYZE"))  # and the visibility map, for index-only scans


def _project_copies(sessions, rng: random.Random) -> None:
    """A projection row for each copied instance, like its source's, with dates spread over the year."""
    with sessions.begin() as s:
        templates = {row.process_id: row for row in s.scalars(select(PepProjection))}
        known = set(s.scalars(select(PepProjection.instance_id)))
        copies = s.execute(select(Instance.id, Instance.child_id, Instance.definition_id)).all()
        processes = dict(s.execute(select(ProcessDefinition.id, ProcessDefinition.process_id)).all())
    rows, schools = [], []
    start = date(2025, 9, 3)
    for instance_id, child_id, definition_id in copies:
        if instance_id in known:
            continue
        source = templates[processes[definition_id]]
        due = _moment(start + timedelta(days=rng.randrange(0, 300)))
        fate = rng.random()
        signed = None if fate < 0.3 else due - timedelta(days=rng.randrange(-20, 40))
        row = {c.key: getattr(source, c.key) for c in PepProjection.__table__.columns}
        row.update(
            instance_id=instance_id,
            child_id=child_id,
            due_at=due,
            signed_off_at=signed,
            on_time=None if signed is None else signed <= due,
            held_on=(due - timedelta(days=10)).date(),
        )
        rows.append(row)
        schools.append({"b_id": child_id, "school": rng.choice(SCHOOLS)})
    with sessions.begin() as s:
        for at in range(0, len(rows), 2000):
            s.execute(insert(PepProjection), rows[at : at + 2000])
        table = Child.__table__
        s.connection().execute(table.update().where(table.c.id == bindparam("b_id")), schools)


def _year_of_children(sessions, count: int, rng: random.Random) -> None:
    """`count` children with the history of a school year: a termly PEP each term they were in care,
    started, held, signed off (mostly on time) and completed, as events in their signed history and
    completed instances with their projection rows; a third came into care during the year, a third
    left it. Each has a social worker of the copies' and a designated teacher."""
    from engine import history

    with sessions.begin() as s:
        real = s.scalar(select(Instance).where(Instance.child_id == "R001"))
        started = s.scalar(select(Event.data).where(Event.instance_id == real.id, Event.kind == "instance_started"))
        template = s.scalar(select(PepProjection).where(PepProjection.instance_id == real.id))
        workers = list(s.scalars(select(User.id).where(User.email.like("social_worker.%"))))
        teacher = s.scalar(select(User.id).where(User.email == "dt@bench.test"))
        next_id = s.scalar(select(func.max(Instance.id))) + 1
        state = s.connection().execute(text("SELECT state FROM instance WHERE id = :i"), {"i": real.id}).scalar_one()
        state = state if isinstance(state, str) else json.dumps(state)  # the JSON text, as the copies take it
    terms = [projection.term_by_label(label) for label in YEAR_TERMS]
    year_start = terms[0].start
    made = 0
    while made < count:
        rows: dict[str, list] = {"child": [], "team": [], "instance": [], "projection": [], "event": []}
        for _ in range(min(2000, count - made)):
            made += 1
            child_id, fate = f"Y{made:07d}", made % 3
            entered = year_start + timedelta(days=rng.randrange(0, 200)) if fate == 1 else date(2023, 5, 1)
            left = year_start + timedelta(days=rng.randrange(30, 280)) if fate == 2 else None
            entries = [{"kind": "entered_care", "actor": "bench", "data": {"date": entered.isoformat()}}]
            for label, term in zip(YEAR_TERMS, terms, strict=True):
                if term.end < entered or (left and term.start > left) or term.start > date(2026, 7, 1):
                    continue
                due = _moment(term.end)
                signed = min(due - timedelta(days=rng.randrange(-10, 40)), _moment(date(2026, 6, 30)))
                data = {**started, "answers": {"kind": "termly", "term": label}, "child": {"id": child_id}}
                entries += [
                    {"kind": "instance_started", "actor": "bench", "instance_id": next_id, "data": data},
                    {
                        "kind": "meeting_held",
                        "actor": "bench",
                        "instance_id": next_id,
                        "data": {"date": str(due.date())},
                    },
                    {"kind": "pep_signed_off", "actor": "bench", "instance_id": next_id, "data": {}},
                    {"kind": "instance_completed", "actor": "bench", "instance_id": next_id, "data": {}},
                ]
                rows["instance"].append(
                    {
                        "id": next_id,
                        "child_id": child_id,
                        "definition_id": real.definition_id,
                        "status": "completed",
                        "state": state,
                        "version": 1,
                        "next_timer_at": None,
                        "waiting_messages": "[]",
                        "started_at": due - timedelta(days=60),
                        "started_by": "bench",
                        "updated_at": signed,
                    }
                )
                row = {c.key: getattr(template, c.key) for c in PepProjection.__table__.columns}
                row.update(
                    instance_id=next_id,
                    child_id=child_id,
                    term=label,
                    due_at=due,
                    started_at=due - timedelta(days=60),
                    status="completed",
                    ended_at=signed,
                    held_on=(due - timedelta(days=10)).date(),
                    signed_off_at=signed,
                    on_time=signed <= due,
                )
                rows["projection"].append(row)
                next_id += 1
            if left:
                entries.append({"kind": "left_care", "actor": "bench", "data": {"date": left.isoformat()}})
            events, seq, head = history.signed_rows(child_id, entries, _moment(year_start))
            rows["event"] += events
            rows["child"].append(
                {
                    "id": child_id,
                    "name": f"Year child {made}",
                    "date_of_birth": date(2008 + made % 12, 1 + made % 12, 1),
                    "school": rng.choice(SCHOOLS),
                    "entered_care": entered,
                    "in_care": left is None,
                    "left_care_on": left,
                    "created_at": _moment(year_start),
                    "history_seq": seq,
                    "history_head": head,
                }
            )
            rows["team"] += [
                {"child_id": child_id, "role_key": "social_worker", "user_id": rng.choice(workers)},
                {"child_id": child_id, "role_key": "designated_teacher", "user_id": teacher},
            ]
        with sessions.begin() as s:
            s.execute(insert(Child), rows["child"])
            s.execute(insert(CaseTeamMember), rows["team"])
            s.execute(INSERT_INSTANCE, rows["instance"])
            s.execute(history.EVENTS, rows["event"])
            s.execute(insert(PepProjection), rows["projection"])
    with sessions.begin() as s:
        if s.bind.dialect.name == "postgresql":
            s.execute(text("SELECT setval('instance_id_seq', (SELECT max(id) FROM instance))"))


def _year_of_quality(sessions, rng: random.Random) -> None:
    """QA results for most of the year's PEPs, as the steps would write them: the adviser's
    `task_completed` on the QA form (its declared rating and criteria; a no fails a criterion, and a
    PEP with one failed is not Green), a fifth rated Red first and sent back (the designated teacher's
    task `task_ready` again with `sent_back`) before a second QA; each step's events appended to the
    child's signed history at its own moment, and the `quality_entry` rows of them and of the sign-offs
    already recorded (engine/qualityrows.py)."""
    from engine import history

    schema = json.loads(Path("forms", QA_FORM).read_text(encoding="utf-8"))
    fields = schema["properties"]
    rating = next(name for name, spec in fields.items() if spec.get(RATING_KEY))
    criteria = [name for name, spec in fields.items() if spec.get(CRITERION_KEY)]
    advisers = [f"adviser.{n}@bench.test" for n in range(ADVISERS)]
    with sessions.begin() as s:
        s.execute(insert(User), [{"email": e, "name": f"Adviser {n}", "active": True} for n, e in enumerate(advisers)])
        children = s.execute(
            select(Child.id, Child.history_seq, Child.history_head, Child.school).where(Child.id.like("Y%"))
        ).all()
        peps = s.execute(
            select(PepProjection.instance_id, PepProjection.child_id, PepProjection.due_at)
            .where(PepProjection.child_id.like("Y%"))
            .order_by(PepProjection.child_id, PepProjection.due_at)
        ).all()
    of_child: dict[str, list] = {}
    for pep in peps:
        of_child.setdefault(pep.child_id, []).append(pep)
    forms = {QA_FORM: schema}
    for at in range(0, len(children), 1000):
        events, rows, tips = [], [], []
        for child in children[at : at + 1000]:
            seq, head = child.history_seq, child.history_head
            adviser = advisers[int(child.id[1:]) % ADVISERS]
            for pep in of_child.get(child.id, []):
                if rng.random() < 0.15:  # not quality-assured (yet)
                    continue
                when = min(pep.due_at - timedelta(days=rng.randrange(15, 40)), _moment(date(2026, 6, 20)))
                steps = []
                if rng.random() < 0.2:
                    answers = {**dict.fromkeys(criteria, True), rating: "Red", "qa_feedback": "Targets need a measure."}
                    answers[rng.choice(criteria)] = False
                    steps.append((when, [_qa(adviser, pep.instance_id, answers), _sent_back(pep.instance_id)]))
                    when += timedelta(days=rng.randrange(3, 12))
                answers = {name: rng.random() > 0.1 for name in criteria}
                answers[rating] = "Green" if all(answers.values()) else rng.choice(("Amber", "Red"))
                steps.append((when, [_qa(adviser, pep.instance_id, {**answers, "qa_feedback": "Clear."})]))
                for moment, entries in steps:
                    made, seq, head = history.signed_rows(child.id, entries, moment, seq, head)
                    events += made
                    rows += [
                        dict(row, school=child.school)
                        for row in qualityrows.rows_of_step(
                            entries, made[0]["seq"], child.id, pep.instance_id, moment, forms.get
                        )
                    ]
            tips.append({"c_id": child.id, "history_seq": seq, "history_head": head})
        with sessions.begin() as s:
            if events:
                s.execute(history.EVENTS, events)
                s.execute(qualityrows.INSERT_QUALITY, rows)
            table = Child.__table__
            s.connection().execute(table.update().where(table.c.id == bindparam("c_id")), tips)
    with sessions.begin() as s:  # the sign-offs the histories already hold (the year's and the copies')
        signed = s.execute(
            select(Event.child_id, Event.instance_id, Event.seq, Event.at, Event.actor, Child.school)
            .join(Child, Child.id == Event.child_id)
            .where(Event.kind == "pep_signed_off", Event.instance_id.is_not(None))
        ).all()
        rows = [
            {
                **qualityrows.facts("pep_signed_off", {}, forms.get)[0],
                "child_id": e.child_id,
                "instance_id": e.instance_id,
                "seq": e.seq,
                "at": e.at,
                "term": calendar.term_label(e.at),
                "actor": e.actor,
                "school": e.school,
            }
            for e in signed
        ]
        for at in range(0, len(rows), 2000):
            s.execute(qualityrows.INSERT_QUALITY, rows[at : at + 2000])


def _qa(adviser: str, instance_id: int, answers: dict) -> dict:
    data = {"task": "quality_assure_pep", "name": "Quality-assure the PEP", "form": QA_FORM, "data": answers}
    return {"kind": "task_completed", "actor": adviser, "instance_id": instance_id, "task_id": None, "data": data}


def _sent_back(instance_id: int) -> dict:
    data = {"task": "record_meeting", "name": "Record the PEP meeting", "sent_back": "the adviser rated it Red"}
    return {"kind": "task_ready", "actor": "system", "instance_id": instance_id, "task_id": None, "data": data}


PPPLUS_SHARE = 0.7  # of the year's children, those whose PEPs ask for PP+
CATEGORIES = ("Academic", "Tuition", "Social and emotional", "Attendance", "Enrichment")


def _year_of_ppplus(sessions, rng: random.Random) -> None:
    """PP+ lines for most of the year's children, as the steps of their termly PEPs would record them:
    a request of one to three targets a few weeks before sign-off (a fifth amended a week later), a
    decision in the days before it (approved, part or refused) and, for most approved, a release after sign-off;
    each step a `task_completed` event and its `ppplus_recorded` events appended to the child's signed
    history (the chain carried on from its tip), with the matching `ppplus_entry` rows. The autumn and
    spring PEPs' lines fall in financial year 2025-26, the summer's in 2026-27; some approved money is
    left unreleased, and most children's devolved grant is not all spent."""
    from engine import history, ppplus

    with sessions.begin() as s:
        peps = s.execute(
            select(PepProjection.child_id, PepProjection.instance_id, PepProjection.signed_off_at)
            .where(PepProjection.child_id.like("Y%"))
            .order_by(PepProjection.child_id, PepProjection.due_at)
        ).all()
        tips = {
            row.id: (row.history_seq, row.history_head, row.school)
            for row in s.execute(
                select(Child.id, Child.history_seq, Child.history_head, Child.school).where(Child.id.like("Y%"))
            )
        }
    by_child: dict[str, list] = {}
    for pep in peps:
        by_child.setdefault(pep.child_id, []).append(pep)
    chosen = [child for child in sorted(by_child) if rng.random() < PPPLUS_SHARE]
    for at in range(0, len(chosen), 1000):
        rows: dict[str, list] = {"event": [], "ledger": [], "tip": []}
        for child_id in chosen[at : at + 1000]:
            seq, head, school = tips[child_id]
            steps = [step for pep in by_child[child_id] if rng.random() < 0.8 for step in _pep_ppplus(pep, rng)]
            for moment, instance_id, entries in sorted(steps, key=lambda step: step[0]):
                rows["ledger"] += ppplus.rows_of_step(entries, seq + 1, child_id, instance_id, moment, school)
                events, seq, head = history.signed_rows(child_id, entries, moment, seq, head)
                rows["event"] += events
            rows["tip"].append({"child_id": child_id, "seq": seq, "head": head})
        with sessions.begin() as s:
            s.execute(history.EVENTS, rows["event"])
            s.execute(insert(PpplusEntry), rows["ledger"])
            s.execute(history.NEW_TIP, rows["tip"])


def _pep_ppplus(pep, rng: random.Random) -> list[tuple[datetime, int, list[dict]]]:
    """The PP+ steps of one PEP: (moment, instance, history entries), the step's first entry its task."""

    def step(moment: datetime, task: str, lines: list[dict]) -> tuple[datetime, int, list[dict]]:
        entries = [
            {
                "kind": "task_completed",
                "actor": "bench",
                "instance_id": pep.instance_id,
                "data": {"task": task, "name": task.replace("_", " "), "step_events": len(lines) + 1},
            }
        ]
        entries += [
            {
                "kind": "ppplus_recorded",
                "actor": "bench",
                "instance_id": pep.instance_id,
                "data": {"element": line["source"], "name": line["source"].replace("_", " "), **line},
            }
            for line in lines
        ]
        return moment, pep.instance_id, entries

    def requests() -> list[dict]:
        return [
            {
                "entry": "requested",
                "amount": rng.choice((150, 200, 250, 300, 400, 500, 700)) * 100,
                "source": "Request_ppplus",
                "category": rng.choice(CATEGORIES),
                "purpose": f"Target {n + 1}: {rng.choice(('reading', 'maths', 'attendance', 'mentoring'))} support",
            }
            for n in range(rng.randrange(1, 4))
        ]

    asked = pep.signed_off_at - timedelta(days=rng.randrange(15, 25))
    lines = requests()
    steps = [step(asked, "Request_ppplus", lines)]
    if rng.random() < 0.2:  # the request amended a week later: it replaces the first
        lines = requests()
        steps.append(step(asked + timedelta(days=7), "Request_ppplus", lines))
    pending = sum(line["amount"] for line in lines)
    fate = rng.random()
    decision = "approved" if fate < 0.6 else "part" if fate < 0.85 else "refused"
    approved = {"approved": pending, "part": pending // 2, "refused": 0}[decision]
    decided = pep.signed_off_at - timedelta(days=rng.randrange(1, 10))
    steps.append(
        step(
            decided,
            "Decide_ppplus",
            [{"entry": "decided", "decision": decision, "amount": approved, "source": "Decide_ppplus"}],
        )
    )
    if approved and rng.random() < 0.8:  # the rest approved and not (yet) released
        steps.append(
            step(
                pep.signed_off_at + timedelta(days=rng.randrange(1, 20)),
                "Release_ppplus",
                [{"entry": "released", "amount": approved, "source": "Release_ppplus"}],
            )
        )
    return steps


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(22, 59, 59), tzinfo=UTC)


def measure(url: str, repeats: int = 20, pages=None) -> dict[str, tuple[float, float, int]]:
    """Each oversight page (of `pages`, else PAGES) asked for `repeats` times by the VS administrator,
    each export (CSV, XLSX) EXPORT_REPEATS times at most: (p50, p95 ms, bytes)."""
    from webui import create_app
    from webui.auth import hash_password

    sessions = session_factory(make_db(url))
    with sessions.begin() as s:
        s.scalar(select(User).where(User.email == "admin@bench.test")).password_hash = hash_password("bench-password")
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "SESSION_COOKIE_SECURE": False,
            "CLOCK": clocks.FrozenClock("2026-07-01T09:00:00+00:00"),
            "WTF_CSRF_ENABLED": False,
        }
    )
    client = app.test_client()
    client.post("/sign-in", data={"email": "admin@bench.test", "password": "bench-password"})
    found = {}
    for page in pages or PAGES:
        samples, size = Samples(), 0
        for _ in range(min(repeats, EXPORT_REPEATS) if ".csv" in page or ".xlsx" in page else repeats):
            with samples.timing():
                response = client.get(page)
            assert response.status_code == 200, (page, response.status_code)
            size = len(response.data)
        found[page] = (samples.ms(50), samples.ms(95), size)
    return found
