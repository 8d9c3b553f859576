"""The task inbox and the task page: see your work, claim from pools, save drafts, submit.

Called by professionals' browsers. Every rule about who may do what is the engine's; this module
turns requests into engine calls and engine answers into pages.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.db import connection_lost, describe
from engine.forms import size_errors
from engine.inbox import inbox, inbox_choices, inbox_counts, task_fate
from engine.mail import one_line
from engine.models import Attachment, Child, OpenTask, TaskDraft, User
from engine.runtime import Conflict, EngineError, FormInvalid, NotAllowed, ProcessFault, TaskNotReady

from .access import may_view_child, record_view
from .context import db, engine, now, record_fault
from .formschema import (
    add_item,
    attachment_paths,
    build_fields,
    error_summary,
    parse_submission,
    remove_item,
    set_path,
    task_schema,
    value_at,
)
from .timeline import plain

bp = Blueprint("inbox", __name__)

DUE_WINDOWS = [("", "Any time"), ("overdue", "Overdue"), ("week", "Due within 7 days"), ("month", "Due within a month")]
ALLOWED_UPLOADS = {
    "application/pdf", "image/png", "image/jpeg", "text/plain",
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
MB = 1024 * 1024


@bp.get("/")
@login_required
def home():
    return redirect(url_for("inbox.index"))


@bp.get("/inbox")
@login_required
def index():
    view = request.args.get("view", "mine") if request.args.get("view") in ("mine", "pool") else "mine"
    filters = {k: (request.args.get(k) or None) for k in ("child", "school", "process", "due")}
    roles = set(current_user.roles)
    rows = inbox(db(), current_user.id, roles, now(), view=view, **filters)
    context = {"rows": rows, "view": view, "filters": filters, "now": now(),
               "counts": inbox_counts(db(), current_user.id, roles, now())}
    if request.headers.get("HX-Request"):
        return render_template("inbox/_rows.html", **context)
    return render_template("inbox/index.html", due_windows=DUE_WINDOWS,
                           choices=inbox_choices(db(), current_user.id, roles), **context)


def _task_for_person(read, task_id: str) -> dict:
    """`read` (the engine's task_view or task_form) of the task if the signed-in person may do it;
    403 if they only see the child; else 404. The engine's check is the one that decides."""
    try:
        return read(db(), task_id, current_user.email)
    except TaskNotReady:
        if request.method == "POST":  # a page opened before the task ended: keep what was typed, and say why
            abort(make_response(_no_longer_open(task_id, request.form.get("_child", ""), _as_typed(request.form), None)))
        abort(404)
    except NotAllowed:
        task = db().get(OpenTask, task_id)
        if may_view_child(current_user, task.child_id):
            abort(403, description=f"This task is for the {task.lane} of this child.")
        abort(404)


@bp.route("/tasks/<task_id>", methods=["GET", "POST"])
@login_required
def task(task_id):
    if request.method == "GET":
        view = _task_for_person(engine().task_view, task_id)
        open_task, draft = view["task"], db().get(TaskDraft, (task_id, current_user.id))
        record_view(open_task.child_id, "task", task=open_task.name)
        db().commit()
        return render_page(open_task, view, draft.data if draft else view["data"], {}, draft)

    # Reading what was posted needs only the form and the version: the workflow is rebuilt (for the
    # instructions) only when the page is shown again, never for a submission that goes through.
    form = _task_for_person(engine().task_form, task_id)
    open_task, draft = form["task"], db().get(TaskDraft, (task_id, current_user.id))
    child = db().get(Child, open_task.child_id)  # read first: the page can be shown again without the database
    schema = task_schema(form)
    version = request.form.get("_version", type=int)
    if version is None:  # none, or a garbled one: the version the page is about now
        version = form["instance_version"]
    basis = request.form.get("_basis", "")[:64] or None  # what the page was built from (engine.page_basis)
    action = request.form.get("_do", "submit")
    data = parse_submission(schema, request.form)
    keep_known_files(schema, data, open_task.child_id)
    try:
        # Answers too long, or a file refused: the page again with what was typed, and nothing saved.
        refused = size_errors(data, schema) or _take_uploads(schema, data, open_task.child_id)
        if refused:
            db().rollback()
            return _show_again(open_task, data, refused, draft, version, basis=basis, status=422)
        if action.startswith(("add:", "remove:")):
            (add_item(schema, data, action[4:]) if action.startswith("add:") else remove_item(data, action[7:]))
            _save_draft(task_id, data)
            db().commit()
            return _show_again(open_task, data, {}, draft, version, basis=basis, anchor=action.split(":", 1)[1])
        if action == "save":
            _save_draft(task_id, data)
            db().commit()
            flash("Your answers are saved. You can come back to this task from your inbox.")
            return redirect(url_for("inbox.task", task_id=task_id))
        return _submit(open_task, child, schema, data, draft, version, basis)
    except SQLAlchemyError as exc:
        if not connection_lost(exc):
            raise
        return _database_lost(form, child, data, draft, version, basis, exc)


def _submit(open_task, child, schema, data, draft, version, basis):
    try:
        engine().complete_task(db(), open_task.id, current_user.email, data, expected_version=version, basis=basis)
        if draft is not None:
            db().delete(draft)
        db().commit()
    except FormInvalid as exc:
        db().rollback()  # the files uploaded with the answers too: the draft keeps no reference to them
        errors = {path: "Select the file again: it could not be kept while the form has errors"
                  for path in keep_known_files(schema, data, open_task.child_id)} | exc.errors
        _save_draft(open_task.id, data)
        db().commit()
        return _show_again(open_task, data, errors, draft, version, basis=basis, status=422)
    except Conflict as exc:
        db().rollback()
        return _show_again(open_task, data, {}, draft, version, basis=basis, conflict=str(exc), status=409)
    except TaskNotReady:
        db().rollback()
        return _no_longer_open(open_task.id, open_task.child_id, data, None)
    except NotAllowed:
        db().rollback()
        abort(403)
    except ProcessFault as fault:  # the answers are kept as a draft: nothing the person typed is lost
        told = record_fault(fault, "task")
        keep_known_files(schema, data, open_task.child_id)
        _save_draft(open_task.id, data)
        db().commit()
        return _show_again(open_task, data, {"(form)": told}, draft, version, basis=basis, status=500)
    except EngineError as exc:
        db().rollback()
        return _show_again(open_task, data, {"(form)": str(exc)}, draft, version, basis=basis, status=422)
    flash(f"{open_task.name} for {child.name} is done.", "success")
    return redirect(url_for("inbox.index"))


def _database_lost(form, child, data, draft, version, basis, exc):
    """The connection to the database was lost while the task's answers were posted (a failover, a
    restart): nothing of the request was applied. The answers are kept as a draft if the database is
    back already, and shown again either way, from what the request had read (503): the person
    submits again in a moment."""
    open_task = form["task"]
    current_app.logger.warning("task %s: the database connection was lost (%s); nothing posted was applied",
                               open_task.id, describe(exc))
    session = db()
    for shown in (open_task, child, draft):  # kept as they were read: a rollback would expire them
        if shown is not None and shown in session:
            session.expunge(shown)
    session.rollback()
    lost = "draft"
    try:
        draft = _save_draft(open_task.id, data)
        session.commit()
    except SQLAlchemyError as again:
        if not connection_lost(again):
            raise
        session.rollback()
        lost = "page"  # the database is still out of reach: the answers are only on the page
    view = {**form, "instructions": "", "instructions_fault": None, "data": {}}
    return render_page(open_task, view, data, {}, draft, status=503, version=version, basis=basis, child=child,
                       lost=lost)


def _show_again(open_task, values, errors, draft, version, **page):
    """The task page once more with what was posted (and the version the person opened), now with its
    instructions; if someone else's step has meanwhile completed or withdrawn the task, say so instead."""
    try:
        view = engine().task_view(db(), open_task.id, current_user.email)
    except TaskNotReady:
        db().rollback()
        return _no_longer_open(open_task.id, open_task.child_id, values, None)
    return render_page(open_task, view, values, errors, draft, version=version, **page)


def _as_typed(posted) -> dict[str, str]:
    """What a person typed into a task page, field by field, without its form (a date's day, month and
    year boxes as one date): to keep and show back when the task is no longer there to read it."""
    typed: dict[str, str] = {}
    for key, value in posted.items():
        if key.startswith("_") or key == "csrf_token" or not value.strip():
            continue
        name, _, part = key.rpartition("-")
        if part in ("day", "month", "year") and name:
            typed[name] = " ".join(posted.get(f"{name}-{p}", "").strip() for p in ("day", "month", "year")).strip()
        else:
            typed[key] = value
    return typed


def _no_longer_open(task_id: str, child_id: str, answers: dict, schema: dict | None):
    """The task ended while the person was filling it in (someone else completed it, a deadline or a
    reported change withdrew it): their answers are kept as a draft and shown to copy, and the page says
    what happened (409). Nothing of a child they may not see is said (404)."""
    if not child_id or not may_view_child(current_user, child_id):
        abort(404)
    fate = task_fate(db(), child_id, task_id)
    if fate is None:
        abort(404)
    if answers:
        _save_draft(task_id, answers)
    db().commit()
    by = db().scalar(select(User.name).where(User.email == fate.by)) if fate.by else None
    written = [(str((schema or {}).get("properties", {}).get(key, {}).get("title") or key.replace("_", " ").capitalize()),
                plain(value)) for key, value in answers.items()]
    child = db().get(Child, child_id)
    return render_template("inbox/gone.html", fate=fate, by=by or fate.by, child=child,
                           written=[(label, text) for label, text in written if text]), 409


def render_page(open_task, view, values, errors, draft, status=200, conflict=None, anchor=None, version=None,
                basis=None, child=None, lost=None):
    """The task page, carrying the version and the basis it was first built from (`version`, `basis`:
    a page shown again keeps those of the page the person opened). `lost` (the database connection was
    lost: "draft" if the answers were saved as one, "page" if they are only on the page) shows it from
    what was read before, without the database."""
    schema = task_schema(view)
    fields = build_fields(schema, values, errors)
    child = child or db().get(Child, open_task.child_id)
    attachments = {} if lost == "page" else _attachment_names(values, schema)
    return render_template(
        "inbox/task.html", task=open_task, child=child, view=view, schema=schema, fields=fields,
        errors=error_summary(fields, errors), draft=draft, conflict=conflict, anchor=anchor, attachments=attachments,
        version=view["instance_version"] if version is None else version,
        basis=view.get("basis", "") if basis is None else basis, now=now(), lost=lost,
    ), status


def _save_draft(task_id: str, data: dict) -> TaskDraft:
    draft = db().get(TaskDraft, (task_id, current_user.id))
    if draft is None:
        draft = TaskDraft(task_id=task_id, user_id=current_user.id, data=data, saved_at=now())
        db().add(draft)
    else:
        draft.data, draft.saved_at = data, now()
    return draft


def _take_uploads(schema: dict, data: dict, child_id: str) -> dict[str, str]:
    """Store uploaded files and put their ids in the data; an empty upload keeps the earlier file.
    {field path: message} for each file refused (its type, its size, or the person's daily allowance),
    and then none is stored."""
    config = current_app.config
    errors, taken = {}, []
    for path in attachment_paths(schema):
        upload = request.files.get(path)
        if upload is None or not upload.filename:
            continue
        content = upload.read(config["UPLOAD_MAX_BYTES"] + 1)
        if upload.mimetype not in ALLOWED_UPLOADS:
            errors[path] = "The selected file must be a PDF, Word document, image (PNG or JPEG) or text file"
        elif len(content) > config["UPLOAD_MAX_BYTES"]:
            errors[path] = f"The selected file must be smaller than {config['UPLOAD_MAX_BYTES'] // MB} MB"
        elif not content:
            errors[path] = "The selected file is empty"
        else:
            taken.append((path, upload, content))
    if errors or not taken:
        return errors
    since = now() - timedelta(days=1)
    uploaded = db().scalar(select(func.coalesce(func.sum(Attachment.size), 0))
                           .where(Attachment.uploaded_by == current_user.email, Attachment.uploaded_at > since))
    if uploaded + sum(len(content) for _, _, content in taken) > config["UPLOAD_DAILY_BYTES"]:
        message = (f"You can upload up to {config['UPLOAD_DAILY_BYTES'] // MB} MB of files in a day. "
                   "Try again tomorrow, or ask the Virtual School to add the file")
        return {path: message for path, _, _ in taken}
    for path, upload, content in taken:
        attachment = Attachment(id=str(uuid.uuid4()), child_id=child_id, filename=one_line(upload.filename, 255),
                                content_type=upload.mimetype, size=len(content),
                                sha256=hashlib.sha256(content).hexdigest(), content=content,
                                uploaded_by=current_user.email, uploaded_at=now())
        db().add(attachment)
        set_path(data, path, attachment.id)
    return {}


def keep_known_files(schema: dict, data: dict, child_id: str) -> list[str]:
    """Leave out of the answers every file that is not one stored for this child: one named by an altered
    page, or one uploaded with answers that were refused (and so not kept). Returns the fields emptied."""
    held = {path: value for path in attachment_paths(schema) if (value := value_at(data, path)) is not None}
    ids = [value for value in held.values() if isinstance(value, str)]
    stored = set(db().scalars(select(Attachment.id).where(Attachment.id.in_(ids), Attachment.child_id == child_id))
                 ) if ids else set()
    emptied = [path for path, value in held.items() if value not in stored]
    for path in emptied:
        *parents, name = path.split(".")
        nodes = [data]
        for part in parents:
            nodes.append(nodes[-1][part])
        del nodes[-1][name]
        for parent, part in zip(reversed(nodes[:-1]), reversed(parents), strict=True):  # no group left empty
            if not parent[part]:
                del parent[part]
    return emptied


def _attachment_names(values: dict, schema: dict) -> dict[str, str]:
    ids = {}
    for path in attachment_paths(schema):
        node = value_at(values, path)
        if isinstance(node, str):
            ids[path] = node
    if not ids:
        return {}
    names = dict(db().execute(select(Attachment.id, Attachment.filename).where(Attachment.id.in_(ids.values()))).all())
    return {path: names.get(attachment_id, "") for path, attachment_id in ids.items()}


@bp.post("/tasks/<task_id>/claim")
@login_required
def claim(task_id):
    try:
        engine().claim(db(), task_id, current_user.email)
    except EngineError as exc:
        db().rollback()
        flash(str(exc), "warning")
        return redirect(url_for("inbox.index", view="pool"))
    db().commit()
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<task_id>/release")
@login_required
def release(task_id):
    try:
        engine().release(db(), task_id, current_user.email)
    except EngineError as exc:
        db().rollback()
        flash(str(exc), "warning")
    else:
        db().commit()
        flash("The task is back in its pool.")
    return redirect(url_for("inbox.index"))
