"""What the `pep` commands share: the context (database URL, sessions), `fails_cleanly` (the engine's
refusals as one line on stderr and exit status 1, a lost database told from one not ready), and the
parsers of their options (JSON data, ISO dates and date-times, the checkpoint file).
"""

from __future__ import annotations

import functools
import json
import sys
from datetime import date
from pathlib import Path

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from .calendar import CalendarError
from .clock import FrozenClock
from .db import DatabaseUnavailable, connection_lost, database_url, describe, make_db, session_factory
from .deploy import DeploymentRejected
from .errors import EngineError, FormInvalid, ProcessFault
from .people import PeopleError
from .runtime import Engine


class Context:
    def __init__(self, url: str | None, name: str = "pep"):
        self.url = database_url(url)
        self.name = name  # of the connections, as pg_stat_activity shows them (e.g. "pep scheduler")
        self._sessions = None

    @property
    def sessions(self):
        if self._sessions is None:
            self._sessions = session_factory(make_db(self.url, name=self.name))
        return self._sessions


def fails_cleanly(command):
    """Turn the engine's refusals into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DeploymentRejected as exc:
            click.echo(f"error: deployment rejected, {len(exc.errors)} problem(s); nothing was stored", err=True)
            for error in exc.errors:
                click.echo(f"  {error}", err=True)
        except ProcessFault as fault:
            with click.get_current_context().obj.sessions.begin() as session:
                incident = Engine().record_fault(session, fault, "cli")
            click.echo(
                f"error: this step could not run and nothing of it was applied ({fault}); "
                f"recorded as incident {incident.id}",
                err=True,
            )
        except FormInvalid as exc:
            click.echo("error: the form has errors; nothing was saved", err=True)
            for field, message in exc.errors.items():
                click.echo(f"  {field}: {message}", err=True)
        except (EngineError, PeopleError, CalendarError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            url = shown(click.get_current_context().obj.url)
            if connection_lost(exc):  # a failover, a restart, a dropped connection: nothing to fix but to retry
                click.echo(
                    f"error: the connection to the database at {url} was lost ({describe(exc)}); run the command again",
                    err=True,
                )
            elif isinstance(exc, (OperationalError, ProgrammingError)):
                click.echo(f'error: the database at {url} is not ready ({describe(exc)}); run "pep init"', err=True)
            else:
                raise
        sys.exit(1)

    return wrapper


def shown(url: str) -> str:
    """The database URL as an error message may show it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can read: say it as given
        return url


def json_object(_ctx, _param, value):
    """Parse a --data option: a JSON object."""
    if value is None:
        return {}
    try:
        data = json.loads(value, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise click.BadParameter('must be a JSON object, e.g. {"venue": "Oak Primary"}')
    return data


def _not_a_number(constant: str):
    raise click.BadParameter(f"{constant} is not a number JSON allows: enter a number")


def iso_datetime(_ctx, _param, value):
    if value is None:
        return None
    try:
        return FrozenClock(value).now()
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO date-time with a zone, e.g. 2026-03-10T09:00:00+00:00"
        ) from exc


def iso_date(value):
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD") from exc


CHECKPOINT_FILE = click.Path(dir_okay=False, path_type=Path)
