"""Shared fixtures: a database (SQLite per test, or PostgreSQL when PEP_TEST_DATABASE_URL is set),
a frozen clock, an engine, and a small council with a child and a case team.

Histories are signed with a test key (never a key file in the working directory), and each test has a
checkpoint file of its own (empty until a test checkpoints)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import select, text

from engine import clock as clocks
from engine import groupkeys
from engine.db import make_db, session_factory
from engine.deploy import Bundle, deploy, deploy_changes
from engine.models import Base, CaseTeamMember, Child
from engine.people import add_child, add_user, find_user
from engine.replay import replay_child
from engine.roles import RoleDirectory, seed_roles
from engine.runtime import Engine

HERE = Path(__file__).parent
BASIC_BUNDLE = HERE / "bundles" / "basic"
PARALLEL_BUNDLE = HERE / "bundles" / "parallel"
PG_URL = os.environ.get("PEP_TEST_DATABASE_URL")
TEST_HISTORY_KEY = "test-history-key-0123456789abcdef0123456789abcdef"
os.environ["PEP_HISTORY_KEY"] = TEST_HISTORY_KEY  # before any test (or server it starts) signs an event

# Generated examples (tests/web/test_fuzz.py): in CI the same ones every run, so that a run can be
# repeated; on a developer's machine new ones each run. Neither keeps a database of failures (the
# .hypothesis folder holds only Hypothesis's cache, and git ignores it): a failure prints its example,
# to be added as a plain test with the fix.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_report_header(config):
    return f"database: {PG_URL or 'SQLite (a file per test)'}"


@pytest.fixture(scope="session")
def _pg_schema():
    db = make_db(PG_URL)
    Base.metadata.drop_all(db)
    Base.metadata.create_all(db)
    yield db
    db.dispose()


@pytest.fixture
def db(request, tmp_path):
    """A clean database for this test."""
    if PG_URL:
        pg = request.getfixturevalue("_pg_schema")
        with pg.begin() as conn:
            names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        yield pg
        return
    sqlite = make_db(f"sqlite:///{tmp_path / 'pep.sqlite'}")
    Base.metadata.create_all(sqlite)
    yield sqlite
    sqlite.dispose()


@pytest.fixture(autouse=True)
def checkpoint_file(tmp_path, monkeypatch):
    """This test's own checkpoint file (PEP_CHECKPOINTS), not yet written."""
    path = tmp_path / "checkpoints.jsonl"
    monkeypatch.setenv("PEP_CHECKPOINTS", str(path))
    return path


@pytest.fixture(autouse=True)
def history_replays(request):
    """After every test with a database (engine, CLI-free web and browser tests alike), re-executing each
    child's recorded inputs on the recorded versions gives back exactly the state stored after every
    step, and the hash chain holds (tests that tamper with the history on purpose are marked `tampered`)."""
    if "sessions" not in request.fixturenames or request.node.get_closest_marker("tampered"):
        yield
        return
    sessions = request.getfixturevalue("sessions")
    yield
    replayer = Engine()  # its own spec cache: nothing carried over from the run itself
    with sessions() as s:
        for child_id in s.scalars(select(Child.id)):
            result = replay_child(s, replayer, child_id)
            assert result.ok, f"child {child_id}: " + "; ".join(result.problems)


@pytest.fixture
def sessions(db):
    return session_factory(db)


@pytest.fixture
def clock():
    """Monday 2 March 2026, 09:00 UTC: spring term, second half."""
    return clocks.FrozenClock("2026-03-02T09:00:00+00:00")


@pytest.fixture
def engine(clock):
    return Engine(clock)


def seat_case_team(s, child_id: str, team: dict[str, str]) -> None:
    """A case team as the council had it before the child's history began (as an import would bring
    it): the rows alone, so that each test's history starts with its own steps. Changing a team once
    the service runs is `engine.people.set_case_team`, which writes each change to the history."""
    directory = RoleDirectory.load(s)
    for role, email in team.items():
        s.add(CaseTeamMember(child_id=child_id, role_key=directory.resolve(role).key, user_id=find_user(s, email).id))
    groupkeys.refile(s, [child_id])  # as the import keeps the holders the oversight breakdowns group by


@pytest.fixture
def council(sessions, clock):
    """Roles, a social worker, a designated teacher, two VS advisers, and a child with a case team."""
    with clocks.using(clock), sessions.begin() as s:
        seed_roles(s)
        add_user(s, "sw@demo.test", "Sam Social-Worker")
        add_user(s, "dt@demo.test", "Dana Teacher", organisation="Oak Primary")
        add_user(s, "other.dt@demo.test", "Omar Teacher", organisation="Elm Academy")
        add_user(s, "ea@demo.test", "Erin Adviser", roles=["VS Education Adviser"])
        add_user(s, "ea2@demo.test", "Eli Adviser", roles=["VS Education Adviser"])
        add_user(s, "admin@demo.test", "Ash Administrator", roles=["VS Administrator"])
        add_user(s, "yp@demo.test", "Young Person One")
        add_child(s, "C001", "Alex Example", date(2014, 5, 1), "Oak Primary")
        add_child(s, "C002", "Blair Sample", date(2012, 1, 9), "Elm Academy")
        seat_case_team(
            s,
            "C001",
            {"Social Worker": "sw@demo.test", "Designated Teacher": "dt@demo.test", "Young Person": "yp@demo.test"},
        )
        seat_case_team(s, "C002", {"Social Worker": "sw@demo.test", "Designated Teacher": "other.dt@demo.test"})
    return sessions


@pytest.fixture
def deployed(council, clock):
    """The basic test bundle, deployed."""
    with clocks.using(clock), council.begin() as s:
        deployment, _ = deploy(s, Bundle.from_dirs(BASIC_BUNDLE), actor="owner@demo.test")
        return deployment


@pytest.fixture
def parallel(deployed, council, clock):
    """The basic bundle and a review prepared on three branches: the social worker records the child's
    views, the designated teacher completes the ePEP, and two working days on, the views are noted due."""
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, Bundle.from_dirs(PARALLEL_BUNDLE).files, actor="owner@demo.test")
    return council


# ---- the shipped council processes ------------------------------------------------------------

ROOT = HERE.parent

# Everyone a council needs: (email, name, council-wide roles, organisation)
STAFF = [
    ("sw@council.test", "Sam Social-Worker", [], "Children's Services"),
    ("sw2@council.test", "Sol Social-Worker", [], "Children's Services"),
    ("dt@oak.test", "Dana Teacher", [], "Oak Primary"),
    ("dt@elm.test", "Eden Teacher", [], "Elm Academy"),
    ("dt@newschool.test", "Nia Teacher", [], "New Meadow School"),
    ("dp@nursery.test", "Pip Practitioner", [], "Little Acorns Nursery"),
    ("dt@college.test", "Cole Tutor", [], "Riverside College"),
    ("ea@council.test", "Erin Adviser", ["VS Education Adviser"], "Virtual School"),
    ("ea2@council.test", "Eli Adviser", ["VS Education Adviser"], "Virtual School"),
    ("vsh@council.test", "Val Head", ["VS Head"], "Virtual School"),
    ("admin@council.test", "Ash Administrator", ["VS Administrator"], "Virtual School"),
    ("bso@council.test", "Bo Support", ["Business Support Officer"], "Children's Services"),
    ("pa@council.test", "Pat Adviser", [], "Leaving Care Team"),
    ("hv@health.test", "Hana Visitor", [], "Health Visiting"),
    ("carer@home.test", "Cara Carer", [], None),
    ("yp@home.test", "Young Person", [], None),
    ("iro@council.test", "Ira Reviewer", [], "Independent Reviewing"),
]

# Children at different stages (all synthetic): id → (name, date of birth, school, case team)
CHILDREN = {
    "Y5": (
        "Alex Example",
        date(2016, 3, 14),
        "Oak Primary",
        {
            "Social Worker": "sw@council.test",
            "Designated Teacher": "dt@oak.test",
            "Carer": "carer@home.test",
            "Young Person": "yp@home.test",
            "IRO": "iro@council.test",
        },
    ),
    "Y6": (
        "Blair Sample",
        date(2015, 1, 20),
        "Elm Academy",
        {"Social Worker": "sw@council.test", "Designated Teacher": "dt@elm.test", "Carer": "carer@home.test"},
    ),
    "Y11": (
        "Casey Test",
        date(2010, 2, 2),
        "Elm Academy",
        {"Social Worker": "sw2@council.test", "Designated Teacher": "dt@elm.test", "Carer": "carer@home.test"},
    ),
    "P16": (
        "Drew Placeholder",
        date(2009, 6, 30),
        "Riverside College",
        {
            "Social Worker": "sw2@council.test",
            "Designated Teacher": "dt@college.test",
            "Personal Adviser": "pa@council.test",
            "Carer": "carer@home.test",
            "Young Person": "yp@home.test",
        },
    ),
    "P18": (
        "Emery Fictional",
        date(2008, 1, 5),
        "Riverside College",
        {
            "Social Worker": "sw2@council.test",
            "Designated Teacher": "dt@college.test",
            "Personal Adviser": "pa@council.test",
        },
    ),
    "EY3": (
        "Frankie Madeup",
        date(2022, 11, 1),
        "Little Acorns Nursery",
        {"Social Worker": "sw@council.test", "Designated Teacher": "dp@nursery.test", "Carer": "carer@home.test"},
    ),
    "EY2": (
        "Gray Invented",
        date(2024, 5, 9),
        None,
        {"Social Worker": "sw@council.test", "Health Visitor": "hv@health.test", "Carer": "carer@home.test"},
    ),
    "NOSCHOOL": (
        "Harper Unplaced",
        date(2012, 8, 1),
        None,
        {"Social Worker": "sw@council.test", "Carer": "carer@home.test"},
    ),
}


def shipped_bundle(*process_files: str, forms: tuple[str, ...] = ()) -> Bundle:
    """A bundle of some of the shipped diagrams (e.g. "pep_review.bpmn") and the forms they use.

    `forms` are file-name prefixes (e.g. "review_"); every form under forms/ starting with one is taken.
    """
    bundle = Bundle()
    for name in process_files:
        bundle.add(f"processes/{name}", (ROOT / "processes" / name).read_text(encoding="utf-8"))
    for path in sorted((ROOT / "forms").glob("*.json")):
        if any(path.name.startswith(prefix) for prefix in forms):
            bundle.add(f"forms/{path.name}", path.read_text(encoding="utf-8"))
    return bundle


def seat_council(s) -> None:
    """Every role of a council (STAFF), and children at each stage with their case teams (CHILDREN)."""
    seed_roles(s)
    for email, name, roles, organisation in STAFF:
        add_user(s, email, name, roles=roles, organisation=organisation)
    for child_id, (name, dob, school, team) in CHILDREN.items():
        add_child(s, child_id, name, dob, school)
        seat_case_team(s, child_id, team)


@pytest.fixture
def demo_council(sessions, clock):
    """Every role of a council, and children at each stage with their case teams."""
    with clocks.using(clock), sessions.begin() as s:
        seat_council(s)
    return sessions
