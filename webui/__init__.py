"""The professionals' web app. `create_app()` is called by `pep-web run`, WSGI servers and tests.

The web layer adds no process rules: it shows people their part and hands what they do to the engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, flash, g, redirect, render_template, request
from jinja2 import ChoiceLoader, PackageLoader, PrefixLoader
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from engine import clock, mail, signin
from engine.db import DatabaseUnavailable, connection_lost, database_url, describe, make_db, session_factory
from engine.errors import Conflict, EngineError, NotAllowed, NotFound, ProcessFault, TaskNotReady
from engine.runtime import Engine

from .extensions import csrf, login_manager


class Services:
    """What every request shares: the engine and the database sessions."""

    def __init__(self, engine: Engine, sessions):
        self.engine = engine
        self.sessions = sessions


def create_app(config: dict | None = None) -> Flask:
    """Build the app; `config` overrides the defaults (tests pass a database URL and a clock)."""
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"))
    app.url_map.converters["int"] = BoundedInt  # an id too large for the database is no page (404), not a 500
    max_age = timedelta(hours=float(os.environ.get("PEP_SESSION_MAX_HOURS") or 8))
    upload_mb = int(os.environ.get("PEP_UPLOAD_MAX_MB") or 10)
    app.config.from_mapping(
        DATABASE_URL=database_url(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("PEP_SECURE_COOKIES", "1") != "0",
        # A session ends after this long without a request, and this long after signing in (webui/auth.py).
        SESSION_IDLE_TIMEOUT=timedelta(minutes=float(os.environ.get("PEP_SESSION_IDLE_MINUTES") or 30)),
        SESSION_MAX_AGE=max_age,
        PERMANENT_SESSION_LIFETIME=max_age,  # the browser drops the cookie then too
        SIGN_IN_ALLOWANCES=signin.Allowances.from_environment(),
        # How many proxies in front of the app set X-Forwarded-For and -Proto (1 behind one HTTPS proxy):
        # sign-in is slowed down per client address, which is then the one the proxy saw.
        PROXY_HOPS=int(os.environ.get("PEP_PROXY_HOPS") or 0),
        # One file, and what one person may upload in 24 hours (webui/inbox.py); the whole of one request
        # (a form with its files) may be 2 MB more than one file, else it is refused with a plain page.
        UPLOAD_MAX_BYTES=upload_mb * 1024 * 1024,
        UPLOAD_DAILY_BYTES=int(os.environ.get("PEP_UPLOAD_DAILY_MB") or 200) * 1024 * 1024,
        MAX_CONTENT_LENGTH=(upload_mb + 2) * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        **mail.settings_from_env(),
        LINK_LIFETIME_DAYS=14,
        SERVICE_NAME=os.environ.get("PEP_SERVICE_NAME", "Personal Education Plans"),
        CLOCK=None,
        # A server sets this (PEP_WARM_UP=1, or WARM_UP in `config`) so that a new worker's first pages
        # do not wait for templates to compile and process specs to parse; tests leave it off.
        WARM_UP=os.environ.get("PEP_WARM_UP", "0") == "1",
    )
    if config:
        app.config.update(config)
    app.config["SECRET_KEY"] = app.config.get("SECRET_KEY") or os.environ.get("PEP_SECRET_KEY") or _instance_secret(app)

    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    db = make_db(app.config["DATABASE_URL"], name="pep-web")
    app.extensions["pep"] = Services(Engine(app.config["CLOCK"]), session_factory(db))
    if app.config["CLOCK"] is not None:  # a clock set for the app (tests): what a request judges by "today" reads it
        app.before_request(_on_the_apps_clock)
        app.teardown_request(_off_the_apps_clock)
    login_manager.init_app(app)
    app.before_request(_refuse_unreadable_input)  # first: the CSRF check reads the same fields
    csrf.init_app(app)
    app.jinja_loader = ChoiceLoader(
        [
            app.jinja_loader,
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    from . import (
        admin,
        audit,
        auth,
        caselife,
        cases,
        council,
        filters,
        inbox,
        ledger,
        links,
        modeller,
        outbox,
        oversight,
        tasklist,  # noqa: F401 (its pages are the task page's: registered with webui/inbox.py's blueprint)
        versions,
    )

    for module in (
        auth,
        inbox,
        cases,
        caselife,
        admin,
        council,
        links,
        outbox,
        modeller,
        audit,
        versions,
        oversight,
        ledger,
    ):
        app.register_blueprint(module.bp)
    filters.register(app)
    app.teardown_appcontext(_close_session)
    app.before_request(_refuse_long_queries)
    app.after_request(_security_headers)
    for code in (400, 403, 404, 405, 413, 500):
        app.register_error_handler(code, _error_page)
    for error in (SQLAlchemyError, DatabaseUnavailable):
        app.register_error_handler(error, _database_lost)
    app.register_error_handler(EngineError, _refused)
    if app.config["WARM_UP"]:
        _warm_up(app, db)
    return app


def _warm_up(app: Flask, db) -> None:
    """Compile every template and parse the newest deployment's process specs before the first request.

    Left to the first requests, this makes a new worker's first pages slow (the task page's templates
    alone take about 0.35 s of CPU, the sign-in page's 0.25 s), and every request behind them waits.
    """
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)
    try:
        with app.extensions["pep"].sessions() as session:
            app.extensions["pep"].engine.parse_newest(session)
    except SQLAlchemyError as exc:  # no schema yet, or the database is not up: the app starts all the same
        logging.getLogger(__name__).warning("process specs not parsed ahead: %s", exc)
    db.dispose()  # a server that forks workers after loading the app must not share this connection


def _instance_secret(app: Flask) -> str:
    """A per-installation secret kept in instance/secret_key, made on first start."""
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class BoundedInt(IntegerConverter):
    """Flask's int converter, up to the largest id a database column holds."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's own argument name
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


MAX_QUERY_VALUE = 500  # characters: searches and filters are names, ids and dates


def _refuse_long_queries():
    """A search or filter longer than any name or id is refused plainly (400), before any query runs."""
    if any(len(value) > MAX_QUERY_VALUE for value in request.args.values()) or len(request.args) > 50:
        abort(400, description="That search or filter is too long. Use fewer words.")


def _refuse_unreadable_input():
    """What no browser sends is refused plainly (400), before anything reads it:
    - a NUL character, which is no text anyone types, and which PostgreSQL can keep nowhere (an address,
      a search, a name, an answer or a file's name alike);
    - a form field whose name cannot be read (a part of a multipart body with a broken header)."""
    texts = [request.path, *(text for pair in request.args.items(multi=True) for text in pair)]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        fields = [
            *request.form.items(multi=True),
            *((name, file.filename or "") for name, file in request.files.items(multi=True)),
        ]
        if any(not isinstance(name, str) for name, _ in fields):
            abort(400, description="Part of what was sent cannot be read. Reload the page and try again.")
        texts += [text for pair in fields for text in pair]
    if any("\x00" in text for text in texts):
        abort(400, description="What was sent holds a character that is not text (NUL). Remove it and try again.")


def _close_session(_exc) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()


def _security_headers(response):
    nonce = g.get("csp_nonce", "")
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' 'nonce-{nonce}'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if current_app.config["SESSION_COOKIE_SECURE"]:  # served over HTTPS: browsers must never fall back to HTTP
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _error_page(error):
    code = getattr(error, "code", 500) or 500
    return render_template("error.html", code=code, description=getattr(error, "description", "")), code


def _refused(error: EngineError):
    """What the engine refused, where a page did not say it in its own place (a form keeps its answers
    and shows its own errors): nothing of the request is kept. A button on one of this service's pages
    is answered on that page, in plain words (never naming a child the person may not see); otherwise a
    task or PEP that is not there, or not this person's, is not found, a change made meanwhile is a
    conflict, and anything else is said as the engine says it. A step the diagram could not run is
    recorded as an incident."""
    from .auth import safe_next
    from .context import db, record_fault

    db().rollback()
    if isinstance(error, ProcessFault):
        record_fault(error, "request")
        return render_template("error.html", code=500, description=ProcessFault.PLAIN), 500
    if isinstance(error, NotFound):
        return render_template("error.html", code=404), 404
    came_from = urlsplit(request.referrer or "")
    if request.method == "POST" and came_from.netloc == request.host:  # a button on one of our pages
        said = PLAINLY.get(type(error), str(error))
        flash(said, "warning")
        return redirect(safe_next(came_from.path + (f"?{came_from.query}" if came_from.query else "")))
    for kind, code in ((TaskNotReady, 404), (NotAllowed, 404), (Conflict, 409)):  # not theirs: not said to exist
        if isinstance(error, kind):
            return render_template("error.html", code=code, description=str(error) if code == 409 else ""), code
    return render_template("error.html", code=400, description=str(error)), 400


# the engine's refusals that are not written for the person who made them (they name ids and roles)
PLAINLY = {
    NotAllowed: "You cannot do that: it is not yours to do.",
    TaskNotReady: "That task is no longer open: it has been completed, or the PEP moved on without it.",
}


def _database_lost(error):
    """A lost database connection (a failover, a restart) is one line in the log and a 503 page that
    says to try again in a minute; any other database error is the 500 it always was."""
    if not connection_lost(error):
        raise error
    logging.getLogger(__name__).warning(
        "%s %s: the database connection was lost (%s)", request.method, request.path, describe(error)
    )
    session = g.pop("db", None)
    if session is not None:
        with contextlib.suppress(SQLAlchemyError):
            session.close()  # the connection it lost is not used again
    if "_login_user" not in g:  # the signed-in person could not be read: the page is shown as to anyone
        g._login_user = login_manager.anonymous_user()
    return render_template("error.html", code=503), 503


def _on_the_apps_clock() -> None:
    g.apps_clock = clock.using(current_app.config["CLOCK"])
    g.apps_clock.__enter__()


def _off_the_apps_clock(_exc) -> None:
    if "apps_clock" in g:
        g.pop("apps_clock").__exit__(None, None, None)
