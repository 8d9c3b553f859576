"""Database connections: `PEP_DATABASE_URL`, SQLite file by default. Called by the CLI, the web app and tests."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import JSON, create_engine, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

DEFAULT_URL = "sqlite:///instance/pep.sqlite"


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `PEP_DATABASE_URL`, else the SQLite default."""
    return url or os.environ.get("PEP_DATABASE_URL") or DEFAULT_URL


def make_db(url: str | None = None, **kwargs) -> SAEngine:
    """Create a SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout."""
    url = database_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
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
    conn.info.pop("wrote", None)


def _end_reads_with_commit(conn) -> None:
    """End a transaction that only read with COMMIT rather than ROLLBACK: the same to PostgreSQL,
    but psycopg forgets every prepared statement of the connection at a ROLLBACK, so a page view
    (read, then close the session) would make the next step parse and plan each statement again.
    A transaction that wrote, or failed, is rolled back as asked."""
    if conn.info.pop("wrote", False):
        return
    from psycopg.pq import TransactionStatus  # only ever called on psycopg's connections

    driver = conn.connection.driver_connection
    if driver.info.transaction_status == TransactionStatus.INTRANS:
        driver.commit()


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
    if not hasattr(driver, "pipeline"):
        yield connection
        return
    dbapi = connection.dialect.loaded_dbapi
    connection.info["wrote"] = True  # SQLAlchemy does not see these statements (_end_reads_with_commit)
    connection.info["pipeline"] = True  # nor could it read anything now (_note_writes)
    try:
        with driver.cursor() as cursor, driver.pipeline():
            yield DriverWrites(cursor, connection.dialect)
    except dbapi.Error as exc:  # raised as the pipeline reads its results: say it as SQLAlchemy would
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc
    finally:
        connection.info.pop("pipeline", None)


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
            processors = tuple((name, process) for name, bind in compiled.binds.items()
                               if (process := bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)))
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
