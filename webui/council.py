"""The council's directory and its start: the schools with their designated teachers, and importing a
case system's extract (engine/importer.py: a dry run first, then applying it). For the Virtual School
administrator only."""

from __future__ import annotations

import re
import time
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from werkzeug.datastructures import MultiDict

from engine import importer, lists
from engine import schools as directory
from engine.errors import EngineError
from engine.models import Child, School, User
from engine.people import PeopleError

from .admin import admin_required
from .adminforms import IMPORT, SCHOOL
from .context import db, engine, now, page_number

bp = Blueprint("council", __name__, url_prefix="/admin")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
KEPT_FOR = 24 * 3600  # an uploaded extract not applied is deleted after a day


# ---- schools ------------------------------------------------------------------------------------------


@bp.route("/schools", methods=["GET", "POST"])
@admin_required
def schools():
    """The school directory, 50 a page, found by name or URN; a school added."""
    errors, form = {}, request.form
    if request.method == "POST":
        errors = _save(form, new=True)
        if not errors:
            return redirect(url_for("council.schools"))
    search = (request.args.get("q") or "").strip()[:200]
    query = select(School).order_by(School.name, School.urn)
    if search:
        query = query.where(or_(func.lower(School.name).like(f"%{search.lower()}%"), School.urn == search))
    page = lists.page_of(db(), query, page_number())
    urns = [s.urn for s in page.rows]
    counts = dict(
        db()
        .execute(
            select(Child.school_urn, func.count())
            .where(Child.school_urn.in_(urns), Child.in_care)
            .group_by(Child.school_urn)
        )
        .all()
    )
    people = _teachers_of(page.rows)
    return render_template(
        "admin/schools.html",
        page=page,
        search=search,
        counts=counts,
        people=people,
        errors=errors,
        summary=SCHOOL.summary(errors),
        form=form,
    ), 422 if errors else 200


@bp.route("/schools/<urn>", methods=["GET", "POST"])
@admin_required
def school(urn):
    """One school: its name and designated teachers; the school's children follow its first teacher."""
    found = db().get(School, urn) or abort(404)
    errors, form = {}, request.form
    if request.method == "POST":
        errors = _save(form, new=False, urn=urn)
        if not errors:
            return redirect(url_for("council.school", urn=urn))
    teachers = _teachers_of([found])
    children = db().scalar(select(func.count()).select_from(Child).where(Child.school_urn == urn, Child.in_care))
    return render_template(
        "admin/school.html",
        school=found,
        teachers=teachers,
        children=children,
        errors=errors,
        summary=SCHOOL.summary(errors),
        form=form,
    ), 422 if errors else 200


def _save(form, new: bool, urn: str | None = None) -> dict[str, str]:
    """Add or change a school (a school's page keeps its URN); the problems, field by field, when it
    cannot be saved."""
    data, errors = SCHOOL.read(form if urn is None else MultiDict([*form.items(multi=True), ("urn", urn)]))
    if errors:
        return errors
    urn, name, teachers = data["urn"], data["name"], data.get("teachers", "")
    if new and db().get(School, urn) is not None:
        return {"urn": f"The directory has a school with the URN {urn} already"}
    emails = [line.strip() for line in re.split(r"[\s,;]+", teachers) if line.strip()]
    before = db().scalar(select(func.count()).select_from(School))
    try:
        directory.save_school(db(), urn, name, emails, actor=current_user.email)
    except PeopleError as exc:
        db().rollback()
        return {"name" if "name" in str(exc) and "email" not in str(exc) else "teachers": str(exc)}
    db().commit()
    added = db().scalar(select(func.count()).select_from(School)) > before
    flash(f"{name.strip()} {'added' if added else 'saved'}.", "success")
    return {}


def _teachers_of(rows: list[School]) -> dict[str, list[User]]:
    ids = {t.user_id for s in rows for t in s.teachers}
    users = {u.id: u for u in db().scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    return {s.urn: [users[t.user_id] for t in s.teachers if t.user_id in users] for s in rows}


# ---- importing ---------------------------------------------------------------------------------------


def _folder() -> Path:
    folder = Path(current_app.config.get("IMPORT_FOLDER") or Path(current_app.instance_path) / "imports")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < time.time() - KEPT_FOR:
            old.unlink(missing_ok=True)
    return folder


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_extract():
    """Upload an extract and see what importing it would do (nothing is changed yet)."""
    if request.method == "GET":
        return render_template("admin/import.html", result=None, errors={})
    upload = request.files.get("extract")
    content = upload.read() if upload else b""
    _data, errors = IMPORT.read(MultiDict({"extract": "chosen"} if content else {}))
    if errors:
        return render_template("admin/import.html", result=None, errors=errors, summary=IMPORT.summary(errors)), 422
    try:
        result = importer.import_file(db(), content, now())
    except importer.ImportRefused as exc:
        db().rollback()
        return render_template(
            "admin/import.html",
            result=None,
            errors={"extract": str(exc)},
            summary=IMPORT.summary({"extract": str(exc)}),
        ), 422
    db().rollback()
    if not result.errors:
        (_folder() / f"{result.digest}.csv").write_bytes(content)
    return render_template("admin/import.html", result=result, errors={}), 422 if result.errors else 200


@bp.post("/import/apply")
@admin_required
def apply_import():
    """Import the extract the dry run showed, as it is now (the database may have changed since)."""
    digest = request.form.get("digest") or ""
    path = _folder() / f"{digest}.csv" if DIGEST.match(digest) else None
    if path is None or not path.exists():
        flash("That file is no longer here: upload it again.", "warning")
        return redirect(url_for("council.import_extract"))
    result = importer.import_file(db(), path.read_bytes(), now())
    if result.errors:
        db().rollback()
        return render_template("admin/import.html", result=result, errors={}), 422
    try:
        importer.apply(db(), result, engine(), current_user.email)
    except EngineError as exc:
        db().rollback()
        flash(f"Nothing was imported: a child's initial PEP could not start ({exc}).", "warning")
        return redirect(url_for("council.import_extract"))
    db().commit()
    path.unlink(missing_ok=True)
    flash(f"Imported: {result.summary(done=True)}.", "success")
    return redirect(url_for("cases.children"))
