"""Per-request helpers: the database session, the engine, and committing a request's work."""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app, g, request
from sqlalchemy.orm import Session

from engine.errors import ProcessFault
from engine.runtime import Engine


def db() -> Session:
    """This request's session; the view commits what it means to keep."""
    if "db" not in g:
        g.db = current_app.extensions["pep"].sessions()
    return g.db


def engine() -> Engine:
    return current_app.extensions["pep"].engine


def now():
    return engine().now()


def page_number(name: str = "page") -> int:
    """The page of a list the address asks for (`?page=3`): the first for anything that is not a
    page's number (a word, a negative, a number too long to be a page)."""
    number = request.args.get(name) or "1"
    return int(number) if number.isdigit() and len(number) < 7 else 1


def record_fault(fault: ProcessFault, source: str) -> str:
    """Roll back the step the diagram could not run, record it as an incident (the VS administrators are
    told), and return what the person is told."""
    db().rollback()
    engine().record_fault(db(), fault, source)
    db().commit()
    return f"{ProcessFault.PLAIN} Your answers are still on this page."


def as_download(filename: str) -> dict[str, str]:
    """The header that offers a file to save under `filename`, whatever it holds: quotes, line breaks and
    other characters a header cannot carry are left out of the plain name and kept in the encoded one."""
    plain = "".join(c if c.isprintable() and c not in '"\\' and ord(c) < 128 else "_" for c in filename) or "file"
    if plain == filename:
        return {"Content-Disposition": f'attachment; filename="{plain}"'}
    return {"Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"}
