"""The demo council: people for every role, schools, and children at different stages of different
PEP variants. Loaded by `pep-web demo` (and `make run`). All names are invented."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select

from engine.errors import EngineError
from engine.models import OpenTask, User
from engine.people import add_child, add_user, set_case_team

from .auth import hash_password
from .grants import grant
from .sample import sample_answers

PASSWORD = "demo-pep-2026"

PEOPLE = [
    # email, name, council-wide roles, organisation
    ("sw@demo.test", "Sam Okafor", [], "Children's Services, North"),
    ("sw2@demo.test", "Priya Shah", [], "Children's Services, South"),
    ("dt.oak@demo.test", "Dana Fletcher", [], "Oak Primary School"),
    ("dt.elm@demo.test", "Eden Clarke", [], "Elm Academy"),
    ("dt.college@demo.test", "Cole Hughes", [], "Riverside College"),
    ("dp.nursery@demo.test", "Pip Moreno", [], "Little Acorns Nursery"),
    ("ea@demo.test", "Erin Walsh", ["VS Education Adviser"], "Virtual School"),
    ("ea2@demo.test", "Eli Novak", ["VS Education Adviser"], "Virtual School"),
    ("vsh@demo.test", "Val Adeyemi", ["VS Head"], "Virtual School"),
    ("admin@demo.test", "Ash Patel", ["VS Administrator"], "Virtual School"),
    ("bso@demo.test", "Bo Lindqvist", ["Business Support Officer"], "Business Support"),
    ("pa@demo.test", "Pat Mensah", [], "Leaving Care Team"),
    ("hv@demo.test", "Hana Kowalski", [], "Health Visiting Service"),
    ("carer@demo.test", "Cara Doyle", [], "Foster carer"),
    ("yp@demo.test", "Jordan (young person)", [], None),
    ("iro@demo.test", "Ira Bennett", [], "Independent Reviewing Service"),
    ("owner@demo.test", "Olu Process-Owner", ["Process Owner"], "Virtual School"),
    ("auditor@demo.test", "Aud Inspector", ["Auditor"], "Quality Assurance"),
]

# id: name, date of birth, school, case team, how the demo starts its PEP (message, data), steps to play
CHILDREN = {
    "D-1001": (
        "Alex Example",
        date(2016, 3, 14),
        "Oak Primary School",
        {
            "Social Worker": "sw@demo.test",
            "Designated Teacher": "dt.oak@demo.test",
            "Carer": "carer@demo.test",
            "Young Person": "yp@demo.test",
            "IRO": "iro@demo.test",
        },
        ("termly_review_due", {"variant": "termly_review_due", "next_meeting_date": None, "previous_targets": []}),
        1,
    ),
    "D-1002": (
        "Blair Sample",
        date(2015, 1, 20),
        "Elm Academy",
        {"Social Worker": "sw@demo.test", "Designated Teacher": "dt.elm@demo.test", "Carer": "carer@demo.test"},
        ("ppg_review_due", {"variant": "ppg_review_due", "next_meeting_date": None, "previous_targets": []}),
        2,
    ),
    "D-1003": (
        "Casey Test",
        date(2010, 2, 2),
        "Elm Academy",
        {"Social Worker": "sw2@demo.test", "Designated Teacher": "dt.elm@demo.test", "Carer": "carer@demo.test"},
        ("all_ages_review_due", {"variant": "all_ages_review_due", "next_meeting_date": None, "previous_targets": []}),
        1,
    ),
    "D-1004": (
        "Drew Placeholder",
        date(2009, 6, 30),
        "Riverside College",
        {
            "Social Worker": "sw2@demo.test",
            "Designated Teacher": "dt.college@demo.test",
            "Personal Adviser": "pa@demo.test",
            "Carer": "carer@demo.test",
        },
        ("post16_review_due", {"variant": "post16_review_due", "next_meeting_date": None, "previous_targets": []}),
        0,
    ),
    "D-1005": (
        "Frankie Madeup",
        date(2022, 11, 1),
        "Little Acorns Nursery",
        {"Social Worker": "sw@demo.test", "Designated Teacher": "dp.nursery@demo.test", "Carer": "carer@demo.test"},
        (
            "word_form_review_due",
            {"variant": "word_form_review_due", "next_meeting_date": None, "previous_targets": []},
        ),
        1,
    ),
    "D-1006": (
        "Gray Invented",
        date(2024, 5, 9),
        None,
        {"Social Worker": "sw@demo.test", "Health Visitor": "hv@demo.test", "Carer": "carer@demo.test"},
        (
            "child_becomes_looked_after",
            {
                "entry": "emergency",
                "education_setting": "none",
                "school": None,
                "review_variant": "word_form_review_due",
            },
        ),
        0,
    ),
    "D-1007": (
        "Harper Unplaced",
        date(2012, 8, 1),
        None,
        {"Social Worker": "sw2@demo.test", "Carer": "carer@demo.test"},
        (
            "child_becomes_looked_after",
            {"entry": "planned", "education_setting": "none", "school": None, "review_variant": "termly_review_due"},
        ),
        1,
    ),
    "D-1008": (
        "Indy Fictitious",
        date(2013, 9, 30),
        "Oak Primary School",
        {"Social Worker": "sw@demo.test", "Designated Teacher": "dt.oak@demo.test", "Carer": "carer@demo.test"},
        (
            "child_becomes_looked_after",
            {
                "entry": "planned",
                "education_setting": "school",
                "school": "Oak Primary School",
                "review_variant": "termly_review_due",
            },
        ),
        0,
    ),
}


# the demo auditor may read this child's history (the VS administrator grants more on Audit > access)
AUDITOR, AUDITED_CHILD = "auditor@demo.test", "D-1001"


def load(engine, sessions, today: date) -> dict[str, int]:
    """Create the demo council unless it exists; start and play each child's PEP a few steps."""
    with sessions.begin() as session:
        if session.scalar(select(User).where(User.email == PEOPLE[0][0])) is not None:
            return {"people": 0, "children": 0, "steps": 0}
        for email, name, roles, organisation in PEOPLE:
            add_user(session, email, name, roles, organisation, password_hash=hash_password(PASSWORD))
        for child_id, (name, dob, school, team, _start, _steps) in CHILDREN.items():
            add_child(session, child_id, name, dob, school)
            set_case_team(session, child_id, team)
        auditor = session.scalar(select(User).where(User.email == AUDITOR))
        grant(
            session,
            auditor,
            AUDITED_CHILD,
            "Complaint about the PEP of spring 2026 (demo)",
            None,
            "admin@demo.test",
            engine.now(),
        )
    steps = 0
    for child_id, (*_, (message, data), play) in CHILDREN.items():
        if "entered_care" not in data and message == "child_becomes_looked_after":
            data = {**data, "entered_care": today.isoformat()}
        with sessions.begin() as session:
            try:
                engine.send_message(session, message, child_id, data, actor="admin@demo.test")
            except EngineError:
                continue
        steps += _play(engine, sessions, child_id, play, today)
    return {"people": len(PEOPLE), "children": len(CHILDREN), "steps": steps}


def _play(engine, sessions, child_id: str, count: int, today: date) -> int:
    """Complete up to `count` of the child's ready tasks with example answers, as their holders."""
    done, rng = 0, random.Random(child_id)
    for _ in range(count):
        with sessions() as session:
            task = session.scalars(
                select(OpenTask)
                .where(OpenTask.child_id == child_id, OpenTask.assignee_id.is_not(None))
                .order_by(OpenTask.ready_at)
            ).first()
            if task is None:
                return done
            holder = session.get(User, task.assignee_id).email
            form = engine.task_view(session, task.id, holder)["form_schema"] or {}
            task_id = task.id
        with sessions.begin() as session:
            try:
                engine.complete_task(session, task_id, holder, sample_answers(form, today, rng))
            except EngineError:
                return done
        done += 1
    return done
