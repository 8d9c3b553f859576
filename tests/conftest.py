"""Shared fixtures: a database (SQLite per test, or PostgreSQL when PEP_TEST_DATABASE_URL is set),
a frozen clock, an engine, and a small council with a child and a case team."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from engine import clock as clocks
from engine.db import make_db, session_factory
from engine.deploy import Bundle, deploy
from engine.models import Base
from engine.people import add_child, add_user, set_case_team
from engine.roles import seed_roles
from engine.runtime import Engine

HERE = Path(__file__).parent
BASIC_BUNDLE = HERE / "bundles" / "basic"
PG_URL = os.environ.get("PEP_TEST_DATABASE_URL")


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
        add_child(s, "C001", "Alex Example", date(2014, 5, 1), "Oak Primary")
        add_child(s, "C002", "Blair Sample", date(2012, 1, 9), "Elm Academy")
        set_case_team(s, "C001", {"Social Worker": "sw@demo.test", "Designated Teacher": "dt@demo.test"})
        set_case_team(s, "C002", {"Social Worker": "sw@demo.test", "Designated Teacher": "other.dt@demo.test"})
    return sessions


@pytest.fixture
def deployed(council, clock):
    """The basic test bundle, deployed."""
    with clocks.using(clock), council.begin() as s:
        deployment, _ = deploy(s, Bundle.from_dirs(BASIC_BUNDLE), actor="owner@demo.test")
        return deployment
