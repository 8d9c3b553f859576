"""Database connections: `PEP_DATABASE_URL`, SQLite file by default. Called by the CLI, the web app and tests."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson
from sqlalchemy import JSON, create_engine, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

DEFAULT_URL = "sqlite:///instance/pep.sqlite"
log = logging.getLogger(__name__)
T = TypeVar("T")


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `PEP_DATABASE_URL`, else the SQLite default."""
    return url or os.environ.get("PEP_DATABASE_URL") or DEFAULT_URL


def make_db(url: str | None = None, name: str | None = None, **kwargs) -> SAEngine:
    """Create a SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout. `name` is the
    `application_name` of the connections on PostgreSQL, which `pg_stat_activity` shows (e.g. each
    sweeper process of `pep scheduler` names itself)."""
    url = database_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if name and url.startswith("postgresql"):
        kwargs["connect_args"] = {"application_name": name[:63], **kwargs.get("connect_args", {})}
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    db = create_engine(url, **kwargs)
    if db.dialect.name == "sqlite":
        event.listen(db, "connect", _sqlite_pragmas)
    elif db.dialect.driver == "psycopg":
        event.listen(db, "before_cursor_execute", _note_writes)
        event.listen(db, "commit", _forget_writes)
        event.listen(db, "rollback", _end_reads_with_commit)
    return db


def json_text(value) -> str:
    """JSON text for the database. orjson is several times faster than the standard library on
    workflow states, the largest values written; like it, it keeps keys in the order written
    (workflow states depend on that) and writes integer keys as strings."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _note_writes(conn, _cursor, statement: str, *_args) -> None:
    if "pipeline" in conn.info:  # SQLAlchemy would find no result there (nor would an ORM flush)
        raise RuntimeError(f"a statement sent through SQLAlchemy while a pipeline is open: {statement[:80]}")
    if "wrote" not in conn.info and statement.lstrip()[:6].upper() != "SELECT":
        conn.info["wrote"] = True


def _forget_writes(conn) -> None:
    if not conn.invalidated:
        conn.info.pop("wrote", None)


def _end_reads_with_commit(conn) -> None:
    """End a transaction that only read with COMMIT rather than ROLLBACK: the same to PostgreSQL,
    but psycopg forgets every prepared statement of the connection at a ROLLBACK, so a page view
    (read, then close the session) would make the next step parse and plan each statement again.
    A transaction that wrote, or failed, is rolled back as asked.

    A lost connection (SQLAlchemy has invalidated it) has nothing to end, and must not be touched:
    reading its `info` would raise "Can't reconnect until invalid transaction is rolled back" in
    place of the error that lost it."""
    if conn.invalidated or conn.info.pop("wrote", False):
        return
    from psycopg import Error
    from psycopg.pq import TransactionStatus  # only ever called on psycopg's connections

    driver = conn.connection.driver_connection
    if driver.info.transaction_status == TransactionStatus.INTRANS:
        try:
            driver.commit()
        except Error:  # the connection broke under it: the ROLLBACK asked for finds that out, as it would have
            return


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(db: SAEngine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(db, expire_on_commit=False)


@contextmanager
def pipelined(session: Session):
    """Send the block's statements to the server together and read their outcomes once, at the end
    of the block (psycopg's pipeline mode on PostgreSQL: one round trip instead of one per
    statement). Only for writes whose results nobody reads: no RETURNING, no row counts. On other
    databases (SQLite, in-process, has no round trips to save) the statements simply run in turn.

    Yields what runs the statements: `execute(statement, params)`, params a dict or a list of dicts
    (the statement once per row). On PostgreSQL that is `DriverWrites`, on others the session's
    connection; what is pending in the session is flushed first, as the session would."""
    session.flush()  # an ORM flush reads results back, so it cannot run in the pipeline
    connection = session.connection()
    driver = connection.connection.driver_connection
    if driver is None or not hasattr(driver, "pipeline"):
        yield connection
        return
    dbapi = connection.dialect.loaded_dbapi
    connection.info["wrote"] = True  # SQLAlchemy does not see these statements (_end_reads_with_commit)
    connection.info["pipeline"] = True  # nor could it read anything now (_note_writes)
    try:
        with driver.cursor() as cursor, driver.pipeline():
            yield DriverWrites(cursor, connection.dialect)
    except dbapi.Error as exc:  # raised as the pipeline reads its results: say it as SQLAlchemy would
        connection.info.pop("pipeline", None)
        lost = connection.dialect.is_disconnect(exc, driver, None)
        if lost:  # as SQLAlchemy does with a statement of its own: the connection is not used again
            connection.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, dbapi.Error, connection_invalidated=lost) from exc
    finally:
        if not connection.invalidated:
            connection.info.pop("pipeline", None)


class DatabaseUnavailable(Exception):
    """The database could not be reached, even on fresh connections: a transient fault of the
    service, never of a process (no incident is recorded). The message is one line."""


# SQLSTATEs of a lost connection: connection exceptions (08), the server shutting the session down
# (57P01 administrator command, as pg_terminate_backend; 57P02 crash; 57P03 cannot connect now;
# 57P05 idle session timeout) and the idle-in-transaction timeout (25P03)
LOST_CONNECTION_STATES = ("08", "57P0", "25P03")


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the connection to the database was lost or could not be made (a failover,
    a restart, a terminated backend, an idle timeout, the server unreachable), as opposed to a refusal
    of what was sent (a constraint, a lock held elsewhere, SQLite's busy database). A lost connection
    is a transient fault: the work is tried again on a fresh connection, never recorded as an incident
    of the process. SQLite, in-process, has no connection to lose."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 8:
        if isinstance(seen, DatabaseUnavailable):
            return True
        if isinstance(seen, DBAPIError) and (seen.connection_invalidated or _driver_lost(seen.orig)):
            return True
        if not isinstance(seen, SQLAlchemyError):  # only SQLAlchemy's own errors are followed to their cause
            return _driver_lost(seen)
        seen, depth = seen.__cause__ or seen.__context__, depth + 1
    return False


def _driver_lost(error: BaseException | None) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    if not isinstance(error, psycopg.Error) or isinstance(error, psycopg.errors.PipelineAborted):
        return False
    if error.sqlstate is None:  # psycopg's own: the connection failed, or was found closed or broken
        return isinstance(error, psycopg.OperationalError)
    return error.sqlstate.startswith(LOST_CONNECTION_STATES)


def describe(exc: BaseException) -> str:
    """A database error in one line: the driver's message (the server's, for a lost connection)."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause) or type(cause).__name__).strip().splitlines()
    return text[0][:300] if text else type(cause).__name__


@dataclass(frozen=True)
class Retry:
    """How work that lost its connection is tried again: `attempts` in all, waiting `first_wait`
    seconds before the second and twice as long before each next one, at most `longest_wait`."""

    attempts: int = 5
    first_wait: float = 0.1
    longest_wait: float = 2.0

    def waits(self) -> list[float]:
        return [min(self.first_wait * 2**n, self.longest_wait) for n in range(self.attempts - 1)]


RETRY = Retry()


def try_again(
    work: Callable[[], T],
    failure: BaseException,
    what: str,
    retry: Retry = RETRY,
    on_lost: Callable[[], None] | None = None,
) -> T:
    """Run `work` again after its connection was lost (`failure`, which the caller caught: the
    first attempt costs no more than a `try`), each time on a fresh connection (SQLAlchemy's pool
    drops a lost one), waiting longer between attempts. Each lost connection is logged in one line.
    Any other error is raised as it is; if the last attempt loses its connection too,
    `DatabaseUnavailable`. `work` must be one whole transaction: a lost one was not applied, or was
    committed just before the loss, so work that reads what it changes does it once either way."""
    for wait in retry.waits():
        log.warning(
            "%s: the database connection was lost (%s); trying again on a fresh connection in %.1f s",
            what,
            describe(failure),
            wait,
        )
        time.sleep(wait)
        try:
            return work()
        except Exception as exc:
            if not connection_lost(exc):
                raise
            failure = exc
            if on_lost:
                on_lost()
    raise DatabaseUnavailable(
        f"{what}: the database could not be reached in {retry.attempts} attempts ({describe(failure)})"
    ) from failure


def retrying(work: Callable[[], T], what: str, retry: Retry = RETRY) -> T:
    """`work()`, tried again on a fresh connection if its connection is lost (`try_again`)."""
    try:
        return work()
    except Exception as exc:
        if not connection_lost(exc):
            raise
        return try_again(work, exc, what, retry)


class DriverWrites:
    """Core statements run on psycopg's cursor itself: each is compiled by SQLAlchemy once (per
    dialect and set of parameter names) and its parameters converted by the columns' own types,
    but none of SQLAlchemy's per-execution work is repeated (cache key, parameter and result set-up),
    which cost half a step's writing time (docs/benchmarks.md)."""

    _compiled: dict[tuple, tuple[str, tuple]] = {}  # a few statements per database engine in the process

    def __init__(self, cursor, dialect):
        self.cursor, self.dialect = cursor, dialect

    def execute(self, statement, params: dict | list[dict]) -> None:
        rows = params if isinstance(params, list) else [params]
        sql, processors = self._compile(statement, tuple(rows[0]))
        if processors:
            rows = [dict(row) for row in rows]
            for row in rows:
                for name, process in processors:
                    row[name] = process(row[name])
        if isinstance(params, list):
            self.cursor.executemany(sql, rows)
        else:
            self.cursor.execute(sql, rows[0])

    def _compile(self, statement, keys: tuple[str, ...]) -> tuple[str, tuple]:
        found = self._compiled.get((self.dialect, statement, keys))
        if found is None:
            compiled = statement.compile(dialect=self.dialect, column_keys=list(keys))
            unknown = set(compiled.binds) - set(keys)
            if unknown:
                raise ValueError(f"parameters missing for {statement}: {', '.join(sorted(unknown))}")
            processors = tuple(
                (name, process)
                for name, bind in compiled.binds.items()
                if (process := bind.type.dialect_impl(self.dialect).bind_processor(self.dialect))
            )
            found = self._compiled[(self.dialect, statement, keys)] = (str(compiled), processors)
        return found


class json_rows(FunctionElement):
    """Aggregate: the rows' values as a JSON array of arrays (`[[a, b], ...]`), read in the same
    statement as the row they belong to. PostgreSQL and SQLite name the functions differently."""

    type = JSON()
    name = "json_rows"
    inherit_cache = True


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element, compiler, **kw):
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows)
def _json_rows_sqlite(element, compiler, **kw):
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"
