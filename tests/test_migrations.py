"""The Alembic migrations build exactly the tables the models describe, on SQLite and on PostgreSQL.

`pep init` and the web app create their databases through the migrations, while the other tests use
`Base.metadata.create_all`: if the two drift apart, production runs on a schema no test has seen.
"""

from __future__ import annotations

import json
import pprint
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url, select, text

from engine import history, history_keys, projection
from engine.db import make_db, session_factory
from engine.models import Base
from engine.schema import alembic_config, upgrade

from .conftest import PG_URL

CHECK_DATABASE = "pep_migration_check"


def head(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def storage_of_workflow_state(url: str) -> str:
    db = make_db(url)
    try:
        with db.connect() as conn:
            return conn.scalar(
                text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'instance'::regclass AND attname = 'state'")
            )
    finally:
        db.dispose()


def differences(url: str) -> list:
    """What autogenerate would change to make the database match the models (nothing, we hope)."""
    db = make_db(url)
    try:
        with db.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, Base.metadata)
    finally:
        db.dispose()


def assert_schema_matches_models(url: str) -> None:
    diff = differences(url)
    assert diff == [], "the migrations and engine/models.py disagree:\n" + pprint.pformat(diff, width=110)


def current_revision(url: str) -> str | None:
    db = make_db(url)
    try:
        with db.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        db.dispose()


def sqlite_schema(url: str) -> list[tuple]:
    """Every table, index and its DDL, plus the rows that must survive a migration run."""
    db = make_db(url)
    try:
        with db.connect() as conn:
            ddl = conn.execute(text("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")).all()
            roles = conn.execute(text("SELECT key, label FROM role ORDER BY key")).all()
            version = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        db.dispose()
    return [*ddl, *roles, *version]


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/migrated.sqlite"


def test_the_migrations_have_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migration history has branched: heads {heads}"


def test_migrating_a_fresh_sqlite_database_gives_the_schema_of_the_models(sqlite_url):
    upgrade(sqlite_url)
    assert current_revision(sqlite_url) == head(sqlite_url)
    assert_schema_matches_models(sqlite_url)


def test_upgrading_an_already_migrated_database_changes_nothing(sqlite_url):
    upgrade(sqlite_url)
    db = make_db(sqlite_url)
    with db.begin() as conn:
        conn.execute(text("INSERT INTO role (key, label, pooled, aliases) VALUES ('iro', 'IRO', 0, '[]')"))
    db.dispose()
    before = sqlite_schema(sqlite_url)

    upgrade(sqlite_url)

    assert sqlite_schema(sqlite_url) == before
    assert current_revision(sqlite_url) == head(sqlite_url)


def test_downgrading_to_base_removes_every_table_and_upgrading_again_restores_them(sqlite_url):
    upgrade(sqlite_url)
    command.downgrade(alembic_config(sqlite_url), "base")
    db = make_db(sqlite_url)
    with db.connect() as conn:
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
    db.dispose()
    assert tables == ["alembic_version"]

    upgrade(sqlite_url)
    assert_schema_matches_models(sqlite_url)


# ---- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def throwaway_pg_database():
    """A fresh, empty database next to the test database; dropped afterwards."""
    if not PG_URL:
        pytest.skip("PEP_TEST_DATABASE_URL is not set (PostgreSQL)")
    server = make_url(PG_URL)
    admin = make_db(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    drop = text(f"DROP DATABASE IF EXISTS {CHECK_DATABASE} WITH (FORCE)")
    try:
        with admin.connect() as conn:
            conn.execute(drop)
            conn.execute(text(f"CREATE DATABASE {CHECK_DATABASE}"))
        yield server.set(database=CHECK_DATABASE).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(drop)
        admin.dispose()


@pytest.mark.postgres
def test_migrating_a_fresh_postgresql_database_gives_the_schema_of_the_models(throwaway_pg_database):
    url = throwaway_pg_database
    upgrade(url)
    assert current_revision(url) == head(url)
    assert_schema_matches_models(url)
    assert storage_of_workflow_state(url) == "m"  # compressed in the row, not written to TOAST each step

    upgrade(url)  # again: a no-op
    assert current_revision(url) == head(url)
    assert_schema_matches_models(url)


def test_a_history_written_before_the_chain_was_keyed_still_verifies_after_the_migration(sqlite_url):
    """Migration 0010 changes the chain's format, not its events: the old ones keep their SHA-256
    hashes (no key id) and verify as they are; the events written after it are signed."""
    command.upgrade(alembic_config(sqlite_url), "0009")
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    db = make_db(sqlite_url)
    prev = history.GENESIS
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO child (id, name, created_at, history_seq, history_head) "
                "VALUES ('C001', 'Alex Example', '2026-03-02 09:00:00', 0, '')"
            )
        )
        for seq, actor in enumerate(["sw@demo.test", "dt@demo.test"], 1):
            data = {"page": "child"}
            digest = history.event_hash(prev, "C001", seq, "record_viewed", at, actor, None, None, data)
            conn.execute(
                text(
                    "INSERT INTO event (child_id, seq, kind, at, actor, data, prev_hash, hash) VALUES "
                    "('C001', :seq, 'record_viewed', '2026-03-02 09:00:00.000000', :actor, :data, :prev, "
                    ":hash)"
                ),
                {"seq": seq, "actor": actor, "data": json.dumps(data), "prev": prev, "hash": digest},
            )
            prev = digest
        conn.execute(text("UPDATE child SET history_seq = 2, history_head = :head"), {"head": prev})
    db.dispose()

    upgrade(sqlite_url)
    db = make_db(sqlite_url)
    sessions = session_factory(db)
    try:
        with sessions() as s:
            before = history.verify(s, "C001")
        assert before.ok and (before.events, before.unkeyed) == (2, 2)
        with sessions.begin() as s:
            history.append(
                s, "C001", [{"kind": "record_viewed", "actor": "ea@demo.test", "data": {"page": "child"}}], at
            )
        with sessions() as s:
            after = history.verify(s, "C001")
            assert [e.key_id for e in history.events(s, "C001")] == [None, None, history_keys.signing_key().id]
        assert after.ok and (after.events, after.unkeyed) == (3, 2)
    finally:
        db.dispose()


def test_0020_fills_in_the_day_a_child_came_into_care_from_their_history(sqlite_url):
    """Before 0020 a report of coming into care left the record's `entered_care` empty and the initial
    PEP it started with no day in the projection; 0020 fills both in from the `entered_care` event."""
    from engine import clock as clocks
    from engine.deploy import Bundle, deploy
    from engine.models import Child, PepProjection
    from engine.runtime import Engine

    from .conftest import ROOT, seat_council
    from .test_deploy import ENTERING_CARE

    upgrade(sqlite_url)  # the models' schema to write with; taken back to 0019 below
    clock = clocks.FrozenClock("2026-03-02T09:00:00+00:00")
    db = make_db(sqlite_url)
    sessions = session_factory(db)
    try:
        with clocks.using(clock), sessions.begin() as s:
            seat_council(s)
            deploy(s, Bundle.from_dirs(ROOT), actor="owner@council.test")
        with sessions.begin() as s:
            s.get(Child, "Y5").in_care = False
            (started,) = Engine(clock).send_message(
                s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test"
            )
        with sessions.begin() as s:  # as the code before 0020 left them
            s.get(Child, "Y5").entered_care = None
            row = s.get(PepProjection, started.id)
            row.entered_care = row.start_by = row.ready_by = None
        db.dispose()
        command.downgrade(alembic_config(sqlite_url), "0019")

        upgrade(sqlite_url)

        with sessions() as s:
            row = s.get(PepProjection, started.id)
            assert s.get(Child, "Y5").entered_care == datetime(2026, 3, 2).date()
            assert row.entered_care == datetime(2026, 3, 2).date() and row.ready_by is not None
            assert {k: getattr(row, k) for k in projection.recompute(s, started.id)} == projection.recompute(
                s, started.id
            )
    finally:
        db.dispose()


def test_0023_keeps_the_quality_rows_of_the_histories_written_before_it(sqlite_url):
    """0023 recomputes the quality page's rows from the histories already written: a PEP sent back and
    rated again, a criterion failed, the sign-offs (tests/test_ppplus_ledger.py's council)."""
    from engine import clock as clocks
    from engine import qualityrows
    from engine.models import QualityEntry
    from engine.runtime import Engine

    from .conftest import seat_council
    from .scenarios.test_all_ages_review import _deploy
    from .test_ppplus_ledger import small_council

    upgrade(sqlite_url)  # the models' schema to write with; taken back to 0022 below
    clock = clocks.FrozenClock("2026-03-02T09:00:00+00:00")
    db = make_db(sqlite_url)
    sessions = session_factory(db)
    try:
        with clocks.using(clock), sessions.begin() as s:
            seat_council(s)
        engine = Engine(clock)
        _deploy(sessions, engine)
        small_council(engine, sessions)

        def rows():
            with sessions() as s:
                found = s.execute(select(QualityEntry.__table__)).mappings()
                return sorted(tuple(str(row[name]) for name in qualityrows.COMPARED) for row in found)

        kept = rows()
        assert len(kept) > 4
        db.dispose()
        command.downgrade(alembic_config(sqlite_url), "0022")

        upgrade(sqlite_url)

        assert rows() == kept
        with sessions() as s:
            assert qualityrows.differences(s) == []
    finally:
        db.dispose()
