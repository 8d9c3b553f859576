"""Sign-in and sign-out, sessions and passwords (docs/security.md, "Accounts, sessions and sign-in").

- Passwords are hashed with Argon2id (below); a new one must pass engine/people.py's rules (the NCSC's:
  at least 12 characters, not only spaces, not common, not a pattern, not the person's own name).
- Failed checks are slowed down per account and address, and per address (engine/signin.py), at
  sign-in and at a password change alike.
- A session is a signed cookie holding the person's id, their sessions' token and when they signed in
  and were last seen. The token is kept in their row and checked at every request, so that a new token
  (sign-out, a password change, an administrator's reset, closing the account) ends every session of
  that person; a session also ends after `SESSION_IDLE_TIMEOUT` without a request and
  `SESSION_MAX_AGE` after signing in.
- After signing in, `next` is followed only to a path on this site.

Hash parameters (a security decision). Argon2id with OWASP's first recommended setting (Password
Storage Cheat Sheet: m=19 MiB, t=2, p=1), not argon2-cffi's default, RFC 9106's second recommended
option (m=64 MiB, t=3, p=4). Both are published recommendations; OWASP's is its stated minimum and
costs an attacker about a fifth as much per guess. It costs this server about 23 ms of one CPU per
sign-in instead of about 150 ms (0.22 s under load), and 19 MiB instead of 64 MiB of memory. Why
that is the right trade here:
- Sign-in is the one expensive page anyone can ask for without an account: an unknown email is
  checked against a dummy hash so that it takes as long as a known one, and the slowing-down of
  failures is per account and address. At 150 ms a handful of requests a second occupied both CPUs
  of a 2-CPU server and every professional's page waited behind them (the web load run, docs/benchmarks.md).
- p=4 buys no strength (an attacker's cost is memory times passes, however many lanes), and the
  library runs the 4 lanes in 4 threads, so one sign-in occupies both CPUs of a 2-CPU server.
- What the hash protects against is offline guessing after the database is stolen; a stolen
  database already holds the children's records. Passwords people choose are at least 12
  characters; those the VS administrator issues are 16 random characters.
Hashes made with other parameters (the old default included) still verify: the parameters are in the
hash. On a successful sign-in `check_needs_rehash` replaces such a hash with one of these parameters.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy.exc import SQLAlchemyError

from engine import signin
from engine.db import Retry, retrying
from engine.models import User
from engine.people import end_sessions, find_user, password_problem, session_token

from .context import db, now
from .extensions import login_manager

bp = Blueprint("auth", __name__)
# OWASP's first Argon2id setting (see above): 19 MiB, 2 passes, 1 lane.
hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

ADMIN_ROLE = "vs_administrator"
PROCESS_OWNER_ROLE = "process_owner"
AUDITOR_ROLE = "auditor"
# a request waits at most 0.15 s for the database to come back before its page says it is unavailable
LOST_AT_START = Retry(attempts=3, first_wait=0.05)
# a hash to verify against when the email is unknown, so unknown and known emails take as long
_DUMMY_HASH = hasher.hash("not a real password")


@dataclass
class Person(UserMixin):
    """The signed-in user as the web layer sees them."""

    id: int
    email: str
    name: str
    organisation: str | None
    roles: frozenset[str]
    session_token: str = ""

    @property
    def is_admin(self) -> bool:
        """The VS administrator manages people, case teams and sees every notification."""
        return ADMIN_ROLE in self.roles

    @property
    def is_process_owner(self) -> bool:
        """Process owners change diagrams and forms, deploy versions and migrate running PEPs."""
        return PROCESS_OWNER_ROLE in self.roles

    @property
    def is_auditor(self) -> bool:
        """Auditors read children's histories (only those granted to them) and change nothing."""
        return AUDITOR_ROLE in self.roles

    def get_id(self) -> str:
        """What the session cookie holds: the person's id and their sessions' token."""
        return f"{self.id}:{self.session_token}"

    @classmethod
    def of(cls, user: User) -> Person:
        return cls(
            user.id, user.email, user.name, user.organisation, frozenset(user.role_keys), user.session_token or ""
        )


@login_manager.user_loader
def load_user(session_id: str) -> Person | None:
    """The person whose session this is, if it has not ended: their account is open, the token is
    their sessions' token now, and neither time-out has passed. Called at every request."""
    user_id, _, token = session_id.partition(":")

    def read() -> User | None:  # the first read of a request: a connection a failover left dead is found
        try:  # here, and the read is simply tried again on a fresh one (LOST_AT_START)
            return db().get(User, int(user_id))
        except SQLAlchemyError:
            db().rollback()
            raise

    user = retrying(read, "reading the signed-in person", LOST_AT_START) if user_id.isdigit() else None
    if (
        user is None
        or not user.active
        or not user.session_token
        or not token
        or not hmac.compare_digest(user.session_token.encode(), token.encode())
    ):
        return _session_ended(None)
    moment = int(now().timestamp())
    signed_in, seen = session.get("signed_in_at"), session.get("seen_at")
    if not isinstance(signed_in, int) or not isinstance(seen, int):
        return _session_ended(None)
    idle, max_age = current_app.config["SESSION_IDLE_TIMEOUT"], current_app.config["SESSION_MAX_AGE"]
    if moment - signed_in >= max_age.total_seconds():
        return _session_ended(
            f"We signed you out because you signed in more than {_duration(max_age)} ago. Sign in again to carry on.",
            user,
        )
    if moment - seen >= idle.total_seconds():
        return _session_ended(
            f"We signed you out because you had not done anything for {_duration(idle)}. Sign in again to carry on.",
            user,
        )
    session["seen_at"] = moment
    return Person.of(user)


def _session_ended(message: str | None, timed_out: User | None = None) -> None:
    """End the session. A task page posted by a session that timed out keeps its answers as the
    person's draft, so that signing in again (it brings them back to the task) loses nothing."""
    kept = None
    if timed_out is not None and request.method == "POST" and request.endpoint == "inbox.task":
        from .inbox import keep_answers_of_ended_session  # the task page's rules for a draft

        kept = keep_answers_of_ended_session(timed_out, request.view_args["task_id"])
    session.clear()
    if message:
        flash(message + (f" Your answers to “{kept}” are saved as a draft." if kept else ""))
        g.session_ended = True
    return None


def _duration(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@login_manager.unauthorized_handler
def _sign_in_first():
    """Send someone who is not signed in to the sign-in page, back here afterwards."""
    if not g.get("session_ended"):
        flash(login_manager.login_message)
    return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))


def _begin_session(user: User) -> None:
    """Start a new session for `user` (a fresh cookie: nothing of the one before is kept)."""
    session.clear()
    login_user(Person.of(user))
    session.permanent = True
    session["signed_in_at"] = session["seen_at"] = int(now().timestamp())


def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    try:
        hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.active and bool(user.password_hash)


def _begin_check(email: str):
    """This check of `email`'s password, counted before it is made; a message if it must wait."""
    try:
        return signin.begin_check(
            db(), email, request.remote_addr, now(), current_app.config["SIGN_IN_ALLOWANCES"]
        ), None
    except signin.TooManyFailures as refused:
        minutes = max(1, -(-int(refused.wait.total_seconds()) // 60))
        return None, (
            f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}",
            {"Retry-After": str(max(1, int(refused.wait.total_seconds())))},
        )


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    errors = {}
    email = (request.form.get("email") or "").strip().lower()
    if request.method == "POST":
        password = request.form.get("password") or ""
        if not email:
            errors["email"] = "Enter your email address"
        if not password:
            errors["password"] = "Enter your password"
        if errors:
            return render_template("auth/sign_in.html", errors=errors, email=email), 400
        attempt, refused = _begin_check(email)
        if refused:
            message, headers = refused
            return render_template("auth/sign_in.html", errors={"email": message}, email=email), 429, headers
        user = find_user(db(), email)
        if check_password(user, password):
            if hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            session_token(user)
            signin.passed(db(), attempt)
            db().commit()
            _begin_session(user)
            return redirect(safe_next(request.args.get("next")))
        errors["email"] = "The email address or password is not right"
        return render_template("auth/sign_in.html", errors=errors, email=email), 400
    return render_template("auth/sign_in.html", errors=errors, email=email)


@bp.post("/sign-out")
@login_required
def sign_out():
    """Sign out here and everywhere else this person is signed in."""
    user = db().get(User, current_user.id)
    end_sessions(user)
    db().commit()
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.sign_in"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change your own password (e.g. the first one the VS administrator gave you). Every other session
    of yours ends; this one goes on."""
    errors, status, headers = {}, 200, {}
    if request.method == "POST":
        user = db().get(User, current_user.id)
        current = request.form.get("current_password") or ""
        new, again = request.form.get("new_password") or "", request.form.get("confirm_password") or ""
        attempt, refused = _begin_check(user.email)
        if refused:
            errors["current_password"], headers = refused
            status = 429
        elif not check_password(user, current):
            errors["current_password"] = "Your current password is not right"
        else:
            signin.passed(db(), attempt)
            db().commit()
        problem = password_problem(new, user.email, user.name, current if not errors else None)
        if problem:
            errors["new_password"] = problem
        elif new != again:
            errors["confirm_password"] = "The two new passwords are not the same"
        if not errors:
            user.password_hash = hash_password(new)
            end_sessions(user)
            db().commit()
            _begin_session(user)
            flash("Your password has been changed. You have been signed out everywhere else.", "success")
            return redirect(url_for("inbox.index"))
        status = status if status != 200 else 422
    return render_template("auth/password.html", errors=errors), status, headers


def safe_next(target: str | None) -> str:
    """Follow `next` only to a path on this site: it begins with one slash, and has no scheme or host,
    no backslash, no space or control character (a browser drops tabs and newlines, so a slash, a tab
    and `/evil` would be `//evil`, another site)."""
    default = url_for("inbox.index")
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(c.isspace() or not c.isprintable() for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
