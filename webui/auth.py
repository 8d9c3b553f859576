"""Sign-in and sign-out. Passwords are hashed with Argon2id; repeated failures are slowed down.

Hash parameters (a security decision). Argon2id with OWASP's first recommended setting (Password
Storage Cheat Sheet: m=19 MiB, t=2, p=1), not argon2-cffi's default, RFC 9106's second recommended
option (m=64 MiB, t=3, p=4). Both are published recommendations; OWASP's is its stated minimum and
costs an attacker about a fifth as much per guess. It costs this server about 23 ms of one CPU per
sign-in instead of about 150 ms (0.22 s under load), and 19 MiB instead of 64 MiB of memory. Why
that is the right trade here:
- Sign-in is the one expensive page anyone can ask for without an account: an unknown email is
  checked against a dummy hash so that it takes as long as a known one, and the slowing-down of
  failures is per email. At 150 ms a handful of requests a second occupied both CPUs of a 2-CPU
  server and every professional's page waited behind them (the web load run, docs/benchmarks.md).
- p=4 buys no strength (an attacker's cost is memory times passes, however many lanes), and the
  library runs the 4 lanes in 4 threads, so one sign-in occupies both CPUs of a 2-CPU server.
- What the hash protects against is offline guessing after the database is stolen; a stolen
  database already holds the children's records. Passwords people choose are at least 12
  characters; those the VS administrator issues are 16 random characters.
Hashes made with other parameters (the old default included) still verify: the parameters are in the
hash. On a successful sign-in `check_needs_rehash` replaces such a hash with one of these parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.db import Retry, retrying
from engine.models import SignInFailure, User
from engine.people import find_user

from .context import db, now
from .extensions import login_manager

bp = Blueprint("auth", __name__)
# OWASP's first Argon2id setting (see above): 19 MiB, 2 passes, 1 lane.
hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

ADMIN_ROLE = "vs_administrator"
PROCESS_OWNER_ROLE = "process_owner"
AUDITOR_ROLE = "auditor"
FREE_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
MAX_WAIT = timedelta(minutes=30)
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

    @classmethod
    def of(cls, user: User) -> Person:
        return cls(user.id, user.email, user.name, user.organisation, frozenset(user.role_keys))


@login_manager.user_loader
def load_user(user_id: str) -> Person | None:
    """The signed-in person: the first read of a request, so a connection a failover or a restart
    left dead in the pool is found here, before anything is done, and the read is simply tried
    again on a fresh one (`LOST_AT_START`); a database that stays lost is the 503 page."""

    def read() -> User | None:
        try:
            return db().get(User, int(user_id))
        except SQLAlchemyError:
            db().rollback()
            raise

    user = retrying(read, "reading the signed-in person", LOST_AT_START)
    return Person.of(user) if user is not None and user.active else None


def hash_password(password: str) -> str:
    return hasher.hash(password)


def wait_before_next_try(email: str):
    """How long this email must wait before another attempt (None: it may try now)."""
    since = now() - FAILURE_WINDOW
    count, last = db().execute(
        select(func.count(SignInFailure.id), func.max(SignInFailure.at))
        .where(SignInFailure.email == email, SignInFailure.at > since)
    ).one()
    if count < FREE_FAILURES or last is None:
        return None
    wait = min(timedelta(seconds=30 * 2 ** (count - FREE_FAILURES)), MAX_WAIT)
    remaining = last + wait - now()
    return remaining if remaining > timedelta(0) else None


def check_password(user: User | None, password: str) -> bool:
    try:
        hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.active and bool(user.password_hash)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    errors = {}
    email = (request.form.get("email") or "").strip().lower()
    if request.method == "POST":
        password = request.form.get("password") or ""
        wait = wait_before_next_try(email) if email else None
        if not email:
            errors["email"] = "Enter your email address"
        if not password:
            errors["password"] = "Enter your password"
        if wait is not None:
            minutes = max(1, round(wait.total_seconds() / 60))
            errors["email"] = f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        if not errors:
            user = find_user(db(), email)
            if check_password(user, password):
                if hasher.check_needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                db().execute(delete(SignInFailure).where(SignInFailure.email == email))
                db().commit()
                session.clear()
                login_user(Person.of(user))
                session.permanent = True
                return redirect(_safe_next(request.args.get("next")))
            db().add(SignInFailure(email=email, remote_addr=request.remote_addr, at=now()))
            db().commit()
            errors["email"] = "The email address or password is not right"
        return render_template("auth/sign_in.html", errors=errors, email=email), 400
    return render_template("auth/sign_in.html", errors=errors, email=email)


@bp.post("/sign-out")
@login_required
def sign_out():
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.sign_in"))


MIN_PASSWORD_LENGTH = 12


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change your own password (e.g. the first one the VS administrator gave you)."""
    errors = {}
    if request.method == "POST":
        user = db().get(User, current_user.id)
        new, again = request.form.get("new_password") or "", request.form.get("confirm_password") or ""
        if not check_password(user, request.form.get("current_password") or ""):
            errors["current_password"] = "Your current password is not right"
        if len(new) < MIN_PASSWORD_LENGTH:
            errors["new_password"] = f"Your new password must be at least {MIN_PASSWORD_LENGTH} characters"
        elif new != again:
            errors["confirm_password"] = "The two new passwords are not the same"
        if not errors:
            user.password_hash = hash_password(new)
            db().commit()
            flash("Your password has been changed.", "success")
            return redirect(url_for("inbox.index"))
    return render_template("auth/password.html", errors=errors), 422 if errors else 200


def _safe_next(target: str | None) -> str:
    """Only follow a `next` that stays on this site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("inbox.index")
