"""Virtual School administration: people, their roles and organisations, and each child's case team."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import lists
from engine.inbox import needs_a_person
from engine.models import AccessGrant, Child, Incident, OpenTask, Role, User, UserRole
from engine.people import (
    PeopleError,
    add_child,
    add_user,
    case_team,
    case_team_choices,
    end_sessions,
    find_user,
    set_case_team,
)

from . import grants
from .access import child_or_404
from .adminforms import NEW_CHILD, NEW_PERSON, PERSON, REVOKE, date_parts, grant_form, person_form, team_form
from .auth import AUDITOR_ROLE, hash_password
from .context import db, engine, now, page_number
from .exports import csv_response
from .filters import LONDON

bp = Blueprint("admin", __name__, url_prefix="/admin")
NOT_IN_TEAMS = ("process_owner", "auditor")  # roles that see no child: never in a case team


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            abort(403, description="Only the Virtual School administrator can manage people and case teams.")
        return view(*args, **kwargs)

    return wrapper


def _people_filters() -> dict:
    """The people list's search and filters, as the address gives them."""
    status = request.args.get("status") or ""
    return {
        "q": (request.args.get("q") or "").strip()[:200],
        "role": request.args.get("role") or "",
        "status": status if status in ("active", "closed") else "",
    }


def _people_query(chosen: dict):
    active = {"active": True, "closed": False}.get(chosen["status"])
    return lists.people_query(chosen["q"], chosen["role"] or None, active)


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users():
    """Everyone with an account, 50 a page: found by name or email, filtered by role and status."""
    roles = db().scalars(select(Role).order_by(Role.label)).all()
    errors, created = {}, None
    if request.method == "POST":
        data, errors = NEW_PERSON.read(request.form)
        if not errors:
            password = secrets.token_urlsafe(12)
            try:
                add_user(
                    db(),
                    data["email"].lower(),
                    data["name"],
                    request.form.getlist("roles"),
                    data.get("organisation"),
                    password_hash=hash_password(password),
                )
            except PeopleError as exc:
                db().rollback()
                errors["email"] = str(exc)
            else:
                db().commit()
                created = {"email": data["email"].lower(), "password": password}
    chosen = _people_filters()
    page = lists.page_of(db(), _people_query(chosen), page_number())
    return render_template(
        "admin/users.html",
        page=page,
        roles=roles,
        errors=errors,
        created=created,
        form=request.form,
        chosen=chosen,
        summary=NEW_PERSON.summary(errors),
        labels={r.key: r.label for r in roles},
    ), 422 if errors else 200


@bp.get("/users.csv")
@admin_required
def users_csv():
    """The people list, as filtered, as a spreadsheet."""
    labels = dict(db().execute(select(Role.key, Role.label)).all())
    rows = [
        (
            u.name,
            u.email,
            u.organisation,
            "; ".join(sorted(labels.get(k, k) for k in u.role_keys)),
            "yes" if u.active else "no",
        )
        for u in db().scalars(_people_query(_people_filters()))
    ]
    return csv_response("people.csv", ["Name", "Email", "Organisation", "Council-wide roles", "Can sign in"], rows)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def update_user(user_id):
    """One person: their roles, organisation and whether they can sign in."""
    user = db().get(User, user_id) or abort(404)
    roles = db().scalars(select(Role).order_by(Role.label)).all()
    if request.method == "GET":
        return render_template("admin/person.html", person=user, roles=roles, created=None, errors={}, form=None)
    data, errors = PERSON.read(request.form)
    if errors:
        return render_template(
            "admin/person.html",
            person=user,
            roles=roles,
            created=None,
            errors=errors,
            summary=PERSON.summary(errors),
            form=request.form,
        ), 422
    valid = set(db().scalars(select(Role.key)))
    user.roles = [UserRole(role_key=key) for key in request.form.getlist("roles") if key in valid]
    user.organisation = data.get("organisation")
    if user.active and request.form.get("active") != "yes":
        end_sessions(user)  # a closed account is signed out everywhere, and stays so if it is opened again
    user.active = request.form.get("active") == "yes"
    db().commit()
    flash(f"{user.name} updated.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/password")
@admin_required
def reset_password(user_id):
    """Give a person a new first password (they change it after signing in); every session of theirs ends,
    so that whoever may have had their old password, or a copy of their session, is signed out."""
    user = db().get(User, user_id) or abort(404)
    password = secrets.token_urlsafe(12)
    user.password_hash = hash_password(password)
    end_sessions(user)
    db().commit()
    roles = db().scalars(select(Role).order_by(Role.label)).all()
    return render_template(
        "admin/person.html",
        person=user,
        roles=roles,
        errors={},
        form=None,
        created={"email": user.email, "password": password, "reset": True},
    )


@bp.route("/children/new", methods=["GET", "POST"])
@admin_required
def new_child():
    errors = {}
    if request.method == "POST":
        data, errors = NEW_CHILD.read(request.form)
        if not errors:
            born = data.get("date_of_birth")
            try:
                add_child(
                    db(), data["child_id"], data["name"], date.fromisoformat(born) if born else None, data.get("school")
                )
            except PeopleError as exc:
                db().rollback()
                errors["child_id"] = str(exc)
            else:
                db().commit()
                return redirect(url_for("admin.team", child_id=data["child_id"]))
    return render_template(
        "admin/new_child.html",
        errors=errors,
        form=request.form,
        summary=NEW_CHILD.summary(errors, request.form),
        born=date_parts(request.form, "date_of_birth"),
    ), 422 if errors else 200


@bp.route("/children/<child_id>/team", methods=["GET", "POST"])
@admin_required
def team(child_id):
    child = child_or_404(child_id, "case_team")
    roles = [role for role in db().scalars(select(Role).order_by(Role.label)) if role.key not in NOT_IN_TEAMS]
    choices = case_team_choices(db(), child_id, [role.key for role in roles])
    form = team_form(roles, {key: [p.email for p in people] for key, people in choices.items()})
    errors = {}
    if request.method == "POST":
        data, errors = form.read(request.form)
        if not errors:
            chosen = {role.label: data.get(role.key) for role in roles if role.key in request.form}
            try:
                set_case_team(db(), child_id, chosen, actor=current_user.email)
            except PeopleError as exc:
                db().rollback()
                errors["(form)"] = str(exc)
            else:
                db().commit()
                flash(f"Case team for {child.name} saved.", "success")
                return redirect(url_for("cases.child", child_id=child_id))
    db().commit()
    team = {k: u.email for k, u in case_team(db(), child_id).items()}
    if request.method == "POST":
        team = {role.key: request.form.get(role.key) for role in roles}  # as chosen, to correct
    return render_template(
        "admin/team.html",
        child=child,
        roles=roles,
        errors=errors,
        choices=choices,
        summary=form.summary(errors),
        team=team,
    ), 422 if errors else 200


@bp.route("/grants", methods=["GET", "POST"])
@admin_required
def access_grants():
    """Give auditors read access to one child or to every child, with a reason and an optional expiry."""
    auditors, errors = _auditors(), {}
    form = grant_form([a.email for a in auditors])
    if request.method == "POST":
        data, errors = form.read(request.form)
        child_id = data.get("child_id") if data.get("scope") == "child" else None
        if child_id is not None and "child_id" not in errors and db().get(Child, child_id) is None:
            errors["child_id"] = "Enter the case number of a child of the council"
        expires_at = None
        if data.get("expires") and "expires" not in errors:
            day = date.fromisoformat(data["expires"])
            if day.year > now().year + 10:
                errors["expires"] = "Last day of access must be within 10 years"
            elif (expires_at := datetime.combine(day + timedelta(days=1), time(0), LONDON)) <= now():
                errors["expires"] = "Last day of access must be today or in the future"
        if not errors:
            auditor = next(a for a in auditors if a.email == data["auditor"])
            grants.grant(db(), auditor, child_id, data["reason"], expires_at, current_user.email, now())
            db().commit()
            flash(f"{auditor.name} can now audit {'child ' + child_id if child_id else 'every child'}.", "success")
            return redirect(url_for("admin.access_grants"))
    return _grants_page(auditors, errors, form.summary(errors, request.form))


@bp.post("/grants/<int:grant_id>/revoke")
@admin_required
def revoke_grant(grant_id):
    row = db().get(AccessGrant, grant_id) or abort(404)
    data, errors = REVOKE.read(request.form)
    if errors:
        return _grants_page(
            _auditors(),
            {f"revoke-{grant_id}": errors["reason"]},
            [{"text": errors["reason"], "href": f"#revoke-{grant_id}"}],
        )
    reason = data["reason"]
    if row.revoked_at is None:
        grants.revoke(db(), row, reason, current_user.email, now())
        db().commit()
    flash("Access revoked.", "success")
    return redirect(url_for("admin.access_grants"))


def _auditors() -> list[User]:
    return (
        db()
        .scalars(select(User).join(UserRole).where(UserRole.role_key == AUDITOR_ROLE, User.active).order_by(User.name))
        .all()
    )


def _grants_page(auditors, errors, summary):
    rows = db().scalars(select(AccessGrant).order_by(AccessGrant.granted_at.desc())).all()
    people = {u.id: u for u in db().scalars(select(User).where(User.id.in_({r.user_id for r in rows})))}
    return render_template(
        "admin/grants.html",
        auditors=auditors,
        rows=rows,
        people=people,
        errors=errors,
        summary=summary,
        form=request.form,
        expires=date_parts(request.form, "expires"),
        now=now(),
    ), 422 if errors else 200


@bp.get("/incidents")
@admin_required
def incidents():
    """Steps a process's own diagram could not run, newest first: what the Virtual School was told of."""
    rows = (
        db()
        .execute(
            select(Incident, Child.name)
            .join(Child, Child.id == Incident.child_id)
            .order_by(Incident.resolved_at.is_not(None), Incident.at.desc())
            .limit(500)
        )
        .all()
    )
    return render_template("admin/incidents.html", rows=rows)


@bp.post("/incidents/<int:incident_id>/resolve")
@admin_required
def resolve_incident(incident_id):
    """Mark an incident dealt with: a PEP whose timers it paused has them again."""
    engine().resolve_incident(db(), incident_id, current_user.email, (request.form.get("note") or "").strip())
    db().commit()
    flash(f"Incident {incident_id} is resolved. Its PEP's timers run again from the next sweep.", "success")
    return redirect(url_for("admin.incidents"))


@bp.get("/needs-a-person")
@admin_required
def needs_person():
    """Tasks that nobody can take: the child's case team names nobody for the task's role, which has no
    pool and no fallback. Naming someone for the role gives them the task (and the child's later ones)."""
    return _needs_person_page(None)


@bp.post("/needs-a-person/<task_id>")
@admin_required
def give_person(task_id):
    """Name the person who holds the task's role in the child's case team: the task moves to them, and
    the change is written to the child's history (engine.people.set_case_team)."""
    task = db().get(OpenTask, task_id)
    if task is None or task.assignee_id is not None or task.pooled:
        flash("That task no longer needs a person: it was done, withdrawn or given to someone.", "warning")
        return redirect(url_for("admin.needs_person"))
    child, role = db().get(Child, task.child_id), db().get(Role, task.role_key)
    offered = [p.email for p in case_team_choices(db(), task.child_id, [task.role_key])[task.role_key]]
    data, errors = person_form(f"{child.name}'s {role.label}", offered).read(request.form)
    email, error = data.get("person"), next(iter(errors.values()), None)
    if not error:
        try:
            set_case_team(db(), task.child_id, {task.role_key: email}, actor=current_user.email)
        except PeopleError as exc:
            db().rollback()
            error = str(exc)
    if error:
        return _needs_person_page({"task_id": task_id, "text": error}), 422
    db().commit()
    flash(
        f"{find_user(db(), email).name} is now {child.name}'s {role.label}, with “{task.name}” and the "
        f"{role.label}'s later tasks for {child.name}.",
        "success",
    )
    return redirect(url_for("admin.needs_person"))


def _needs_person_page(error: dict | None) -> str:
    """The list, each task with the people who may hold its role for its child (as on the case team page)."""
    rows = needs_a_person(db())
    choices = {}
    for row in rows:
        if (row.child_id, row.role_key) not in choices:
            choices[row.child_id, row.role_key] = case_team_choices(db(), row.child_id, [row.role_key])[row.role_key]
    return render_template("admin/needs_person.html", rows=rows, choices=choices, error=error)
