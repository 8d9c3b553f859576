"""Connections: prepared statements outlive a page view on PostgreSQL, a write never outlives a
session that did not commit, a step's pipelined writes fail as SQLAlchemy errors, and a lost
connection is told from a refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.db import json_rows, make_db, pipelined, session_factory
from engine.models import Child

from .conftest import PG_URL

postgres_only = pytest.mark.skipif(not PG_URL, reason="psycopg's own behaviour: set PEP_TEST_DATABASE_URL")
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def a_child(child_id: str) -> dict:
    return {
        "id": child_id,
        "name": "Sam Sample",
        "created_at": NOW,
        "history_seq": 0,
        "history_head": "",
        "in_care": True,
    }


@postgres_only
def test_page_views_that_only_read_keep_the_connections_prepared_statements(db):
    one_connection = make_db(PG_URL, pool_size=1, max_overflow=0)
    sessions = session_factory(one_connection)
    try:
        for _ in range(8):  # psycopg prepares a statement at its sixth use
            with sessions() as s:
                s.scalar(select(func.count(Child.id)))
        with sessions() as s:
            assert s.scalar(text("SELECT count(*) FROM pg_prepared_statements")) > 0
    finally:
        one_connection.dispose()


def test_a_session_closed_without_commit_loses_what_it_wrote(sessions):
    with sessions() as s:
        s.scalar(select(func.count(Child.id)))
        s.execute(insert(Child), [a_child("C900")])
    with sessions() as s:
        assert s.get(Child, "C900") is None


def test_a_failed_write_in_a_pipeline_is_an_integrity_error_and_nothing_lands(sessions):
    with pytest.raises(IntegrityError), sessions.begin() as s, pipelined(s) as writes:  # noqa: PT012 - the second write fails
        writes.execute(insert(Child), [a_child("C901")])
        writes.execute(insert(Child), [a_child("C901")])
    with sessions() as s:
        assert s.get(Child, "C901") is None


def test_json_rows_reads_the_rows_values_in_the_same_statement(sessions):
    with sessions.begin() as s:
        s.execute(insert(Child), [a_child("C902"), a_child("C903")])
    with sessions() as s:
        rows = s.scalar(select(json_rows(Child.id, Child.history_seq)).where(Child.id.in_(["C902", "C903"])))
    assert sorted(rows) == [["C902", 0], ["C903", 0]]


def test_pipelined_writes_are_rolled_back_when_the_transaction_fails_after_them(sessions):
    with pytest.raises(RuntimeError), sessions.begin() as s:  # noqa: PT012 - the failure comes after the writes
        s.scalar(select(func.count(Child.id)))
        with pipelined(s) as writes:
            writes.execute(insert(Child), [a_child("C904")])
        raise RuntimeError("the step failed after writing")
    with sessions() as s:
        assert s.get(Child, "C904") is None


@postgres_only
def test_a_read_through_sqlalchemy_inside_a_pipeline_fails_loudly_rather_than_finding_nothing(db):
    connections = make_db(PG_URL)
    try:
        with (
            pytest.raises(RuntimeError, match="pipeline is open"),
            session_factory(connections).begin() as s,
            pipelined(s),
        ):
            s.scalar(select(func.count(Child.id)))
    finally:
        connections.dispose()


@postgres_only
def test_a_pipeline_whose_connection_is_lost_says_so_and_the_next_session_gets_a_fresh_connection(db):
    from engine.db import connection_lost

    connections = make_db(PG_URL)
    sessions = session_factory(connections)
    try:
        with pytest.raises(OperationalError) as lost, sessions.begin() as s:  # noqa: PT012 - the loss comes mid-block
            backend = s.scalar(text("SELECT pg_backend_pid()"))
            with db.connect() as admin:  # as a failover, a restart or an idle timeout does
                assert admin.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend})
            with pipelined(s) as writes:
                writes.execute(insert(Child), [a_child("C905")])
        assert lost.value.connection_invalidated and connection_lost(lost.value)
        # the pipeline's own error (the server closed it, or psycopg found it lost), not the ROLLBACK's
        assert any(
            words in str(lost.value.orig) for words in ("server closed the connection", "the connection is lost")
        )
        with sessions() as s:
            assert s.get(Child, "C905") is None
            assert s.scalar(text("SELECT pg_backend_pid()")) != backend
    finally:
        connections.dispose()


def test_a_refusal_is_not_a_lost_connection(sessions):
    from engine.db import connection_lost

    with pytest.raises(IntegrityError) as refused, sessions.begin() as s:
        s.execute(insert(Child), [a_child("C906"), a_child("C906")])
    assert not connection_lost(refused.value)
