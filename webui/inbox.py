"""The task inbox and the task page: see your work, claim from pools, save drafts, submit.

Called by professionals' browsers. Every rule about who may do what is the engine's; this module
turns requests into engine calls and engine answers into pages.
"""

from __future__ import annotations

import json
from typing import NoReturn

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
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from engine.attachments import attachment_answers
from engine.db import connection_lost, describe
from engine.deploy import REVIEWS_KEY
from engine.errors import Conflict, EngineError, FormInvalid, NotAllowed, ProcessFault, TaskNotReady
from engine.forms import drop_unasked, field_errors, size_errors
from engine.inbox import inbox, inbox_choices, inbox_counts, opened_since, task_fate
from engine.models import Child, Instance, Notification, OpenTask, TaskDraft, User
from engine.vocabulary import Status

from .access import may_view_child, record_view
from .context import db, engine, now, record_fault
from .documents import Reviewed, answers, reviewed_pep
from .filters import ukdate
from .formschema import (
    add_item,
    build_fields,
    drop_path,
    error_summary,
    parse_submission,
    remove_item,
    sections,
    task_schema,
)
from .posted import Posted, Refused
from .prefill import case_team, prefill, suggestions
from .timeline import plain
from .uploads import (
    as_kept,
    check_uploads,
    file_links,
    files_named,
    keep_known_files,
    remove_left,
    store_uploads,
)

bp = Blueprint("inbox", __name__)

DRAFT_ACTIONS = ("add:", "remove:", "detach:", "check", "save")  # the page's buttons that keep a draft, not submit

DUE_WINDOWS = [("", "Any time"), ("overdue", "Overdue"), ("week", "Due within 7 days"), ("month", "Due within a month")]


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
    context = {
        "rows": rows,
        "view": view,
        "filters": filters,
        "now": now(),
        "counts": inbox_counts(db(), current_user.id, roles, now()),
    }
    if request.headers.get("HX-Request"):
        return render_template("inbox/_rows.html", **context)
    return render_template(
        "inbox/index.html", due_windows=DUE_WINDOWS, choices=inbox_choices(db(), current_user.id, roles), **context
    )


def _task_for_person(read, task_id: str) -> dict:
    """`read` (the engine's task_view or task_form) of the task if the signed-in person may do it;
    403 if they only see the child; else 404. The engine's check is the one that decides."""
    try:
        return read(db(), task_id, current_user.email)
    except (TaskNotReady, NotAllowed) as refused:
        _not_for_person(task_id, refused)


def _not_for_person(task_id: str, refused: EngineError) -> NoReturn:
    """The engine found no open task `task_id` the signed-in person may do: a POST from a page opened before
    the task ended keeps what was typed and says why; a person who sees the child is told whose task it
    is (403); anyone else, nothing (404)."""
    if isinstance(refused, TaskNotReady):
        if request.method == "POST":
            db().rollback()
            abort(
                make_response(_no_longer_open(task_id, request.form.get("_child", ""), _as_typed(request.form), None))
            )
        # a reminder's link followed once the task had ended: the person was told of it, so they are told
        # how it ended (the child of a closed task is found from what they were sent)
        told = db().scalar(
            select(Notification.child_id)
            .where(Notification.user_id == current_user.id, Notification.task_id == task_id)
            .limit(1)
        )
        if told:
            abort(make_response(_no_longer_open(task_id, told, {}, None, opened=False)))
        abort(404)
    task = db().get(OpenTask, task_id)
    if task is not None and may_view_child(current_user, task.child_id):
        abort(403, description=f"This task is for the {task.lane} of this child.")
    abort(404)


@bp.route("/tasks/<task_id>", methods=["GET", "POST"])
@login_required
def task(task_id):
    if request.method == "GET":
        view = _task_for_person(engine().task_view, task_id)
        open_task, draft = view["task"], db().get(TaskDraft, (task_id, current_user.id))
        record_view(open_task.child_id, "task", task=open_task.name)
        from . import tasklist  # a long form's task list (it builds on this module's pages)

        if tasklist.is_sectioned(task_schema(view)):
            db().commit()
            return tasklist.task_list_page(open_task, view, draft)
        reviewed = _reviewed(open_task, view)
        values = (
            draft.data
            if draft
            else prefill(task_schema(view), view["data"], case_team(db(), open_task.child_id), current_user.email)
        )
        db().commit()
        return render_page(open_task, view, values, {}, draft, reviewed=reviewed)

    action = request.form.get("_do", "submit")
    if not action.startswith(DRAFT_ACTIONS):
        return _submit(task_id, confirm=action == "confirm")
    # Kept as a draft: reading what was posted needs only the form and the version; the workflow is
    # rebuilt (for the instructions) only when the page is shown again.
    form = _task_for_person(engine().task_form, task_id)
    open_task, draft = form["task"], db().get(TaskDraft, (task_id, current_user.id))
    child = db().get(Child, open_task.child_id)  # read first: the page can be shown again without the database
    schema, (version, basis) = task_schema(form), page_read(form)
    data, before = posted_answers(schema, open_task.child_id, draft)
    if action.startswith("detach:"):
        _detach(schema, data, action[7:])
    kind, _, path = action.partition(":")
    try:
        refused = edit_draft(schema, data, action, open_task.child_id)
        if refused:  # answers too long, or a file refused: the page again with what was typed, nothing saved
            db().rollback()
            return _show_again(open_task, as_kept(data), refused, draft, version, basis=basis, status=422)
        _save_draft(task_id, data)
        remove_left(schema, before, data, open_task.child_id, current_user.email)
        errors = field_errors(json.dumps(schema), drop_unasked(schema, data)) if action == "check" else {}
        db().commit()
    except SQLAlchemyError as exc:
        if not connection_lost(exc):
            raise
        return _database_lost(form, child, as_kept(data), draft, version, basis, exc)
    if kind in ("add", "remove", "detach"):
        return _show_again(open_task, data, {}, draft, version, basis=basis, anchor=path)
    if errors:
        return _show_again(open_task, data, errors, draft, version, basis=basis, status=422)
    if action == "check":  # a long form's answers checked: "Check your answers" before submitting
        return redirect(url_for("inbox.check", task_id=task_id, version=version, basis=basis or ""))
    flash("Your answers are saved. You can come back to this task from your inbox.")
    return redirect(url_for("inbox.task", task_id=task_id))


def page_read(form: dict) -> tuple[int, str | None]:
    """The instance version and the basis (engine.page_basis) of the page the answers were posted from
    (a page without a version, or a garbled one: the version the page is about now)."""
    version = request.form.get("_version", type=int)
    return form["instance_version"] if version is None else version, request.form.get("_basis", "")[:64] or None


def edit_draft(schema: dict, data: dict, action: str, child_id: str) -> dict[str, str]:
    """The problems of answers posted to be kept as a draft (too long, a file refused), and nothing done;
    else none, the files chosen stored for the child and the item the button (`action`) asks for added or
    removed."""
    refused = size_errors(as_kept(data), schema) or check_uploads(data, current_user.email)
    if refused:
        return refused
    store_uploads(data, child_id, current_user.email)
    kind, _, path = action.partition(":")
    if kind == "add":
        add_item(schema, data, path)
    elif kind == "remove":
        remove_item(data, path)
    return {}


def posted_answers(schema: dict, child_id: str, draft: TaskDraft | None) -> tuple[dict, set[str]]:
    """The answers posted to a page of `schema` (each file chosen a `NewFile`; only the child's files
    kept) and the files the page and the draft named before (those left out are removed once the
    answers are kept: `remove_left`)."""
    data = parse_submission(schema, request.form, files=request.files)
    keep_known_files(schema, data, child_id)
    return data, files_named(schema, data) | files_named(schema, draft.data if draft else None)


@bp.get("/tasks/<task_id>/check")
@login_required
def check(task_id):
    """Check your answers (GOV.UK's pattern) of a long form, section by section, each with a link back to
    change it; submitting sends the draft the answers were saved to."""
    view = _task_for_person(engine().task_view, task_id)
    open_task, draft = view["task"], db().get(TaskDraft, (task_id, current_user.id))
    if draft is None:
        return redirect(url_for("inbox.task", task_id=task_id))
    schema, data = task_schema(view), drop_unasked(task_schema(view), draft.data)
    links = file_links(schema, data, open_task.child_id)
    files = {value: links[path]["name"] for path, value in attachment_answers(schema, data) if path in links}
    parts = []
    for section in sections(schema, build_fields(schema, data)):
        names = [f.path for f in section.fields]
        names += [r.path for f in section.fields for revealed in f.revealed.values() for r in revealed]
        shown = {"properties": {n: schema["properties"][n] for n in schema.get("properties", {}) if n in names}}
        parts.append((section, answers(shown, data, files)))
    db().commit()
    return render_template(
        "inbox/check.html",
        task=open_task,
        child=db().get(Child, open_task.child_id),
        parts=parts,
        version=request.args.get("version", view["instance_version"]),
        basis=request.args.get("basis", view.get("basis", ""))[:64],
    )


def keep_answers_of_ended_session(user: User, task_id: str) -> str | None:
    """A task page posted after its session timed out: what was typed is kept as that person's draft
    (files are not stored: they are chosen again), if they may do the task. The task's name, if kept."""
    try:
        form = engine().task_form(db(), task_id, user.email)
    except EngineError:
        db().rollback()
        return None
    schema, open_task = task_schema(form), form["task"]
    data = parse_submission(schema, request.form)
    keep_known_files(schema, data, open_task.child_id)
    if not data or size_errors(data, schema):
        return None
    _save_draft(task_id, data, user.id)
    db().commit()
    return open_task.name


def _detach(schema: dict, data: dict, path: str) -> None:
    """Take the file at `path` off the answers (the Remove button beside it)."""
    if path in {named for named, _ in attachment_answers(schema, data)}:
        drop_path(data, path)


class _Submission(Posted):
    """A task page's answers (webui/posted.py) as the signed-in person posted them: their draft is kept when
    the answers are refused; confirming a long form's checked answers, the draft is the answers."""

    def __init__(self, task_id: str, confirm: bool) -> None:
        super().__init__(current_user.email)
        self.task_id, self.confirm = task_id, confirm

    def read(self, form: dict) -> dict:
        self.draft = db().get(TaskDraft, (self.task_id, current_user.id))
        self.child = db().get(Child, form["task"].child_id)  # the page can be shown again without the database
        self.version, self.basis = page_read(form)
        if not self.confirm:
            return super().read(form)
        self.form, self.open_task, self.schema = form, form["task"], task_schema(form)
        checked = self.draft.data if self.draft is not None else {}
        self.before = files_named(self.schema, checked)
        self.data = self.typed = drop_unasked(self.schema, checked)
        return self.data

    def parse(self) -> dict:
        data, self.before = posted_answers(self.schema, self.open_task.child_id, self.draft)
        return data

    def refused(self, draft: bool = True) -> None:
        """After a refusal's rollback: the files chosen kept all the same, and the answers as the person's
        draft (`draft`), so that nobody is asked to type or choose anything twice."""
        self.keep()
        if draft:
            _save_draft(self.task_id, self.data)
            remove_left(self.schema, self.before, self.data, self.open_task.child_id, current_user.email)


def _submit(task_id: str, confirm: bool):
    """Complete the task with the answers posted (`confirm`: the draft checked), in one pass through the
    engine. Refused, what was typed and the files chosen are kept (with the draft, or on the page shown
    again)."""
    me, started, posted = current_user.email, now(), _Submission(task_id, confirm)
    if confirm and db().get(TaskDraft, (task_id, current_user.id)) is None:  # nothing was checked: the task's page
        return redirect(url_for("inbox.task", task_id=task_id))
    try:
        engine().complete_task(
            db(),
            task_id,
            me,
            posted.read,
            expected_version=request.form.get("_version", type=int),
            basis=request.form.get("_basis", "")[:64] or None,
            keep=posted.keep,
        )
        if posted.draft is not None:
            db().delete(posted.draft)
        remove_left(posted.schema, posted.before, posted.data, posted.open_task.child_id, me)
        db().commit()
    except Refused as refused:
        db().rollback()
        page = {"basis": posted.basis, "status": 422}
        return _show_again(posted.open_task, refused.typed, refused.errors, posted.draft, posted.version, **page)
    except SQLAlchemyError as exc:
        if posted.form is None or not connection_lost(exc):
            raise
        return _database_lost(posted.form, posted.child, posted.typed, posted.draft, posted.version, posted.basis, exc)
    except EngineError as refused:
        if posted.form is None:  # the engine's read found no task this person may do
            _not_for_person(task_id, refused)
        return _refused(posted, refused)
    open_task = posted.open_task
    status, opened = opened_since(db(), open_task.instance_id, started)
    back = next(
        (t for t in opened if t.sent_back and t.spec_id == open_task.spec_id and t.assignee_id == current_user.id), None
    )
    if back is not None:  # the diagram sent it straight back: the task again, saying why
        return redirect(url_for("inbox.task", task_id=back.task_id))
    flash(f"{open_task.name} for {posted.child.name} is done. {what_next(status, opened)}", "success")
    return redirect(url_for("inbox.index"))


def _refused(posted: _Submission, refused: EngineError):
    """The engine refused the answers: the page again with why, what was typed kept."""
    open_task, data, page = posted.open_task, posted.data, {"basis": posted.basis}
    if isinstance(refused, ProcessFault):  # the answers are kept as a draft: nothing the person typed is lost
        told = record_fault(refused, "task")
        posted.refused()
        db().commit()
        return _show_again(open_task, data, {"(form)": told}, posted.draft, posted.version, status=500, **page)
    db().rollback()
    if isinstance(refused, NotAllowed):
        abort(403)
    if isinstance(refused, TaskNotReady):
        posted.refused(draft=False)
        return _no_longer_open(open_task.id, open_task.child_id, data, None)
    if isinstance(refused, FormInvalid):
        posted.refused()
        db().commit()
        return _show_again(open_task, data, refused.errors, posted.draft, posted.version, status=422, **page)
    if isinstance(refused, Conflict):  # what was typed is kept as the person's draft, with the files it names
        posted.refused()
        db().commit()
        return _show_again(open_task, data, {}, posted.draft, posted.version, conflict=str(refused), status=409, **page)
    posted.refused(draft=False)
    db().commit()
    return _show_again(open_task, data, {"(form)": str(refused)}, posted.draft, posted.version, status=422, **page)


def what_next(status: str, opened) -> str:
    """What happens next and by when, in a sentence, after a person's step."""
    if status == Status.COMPLETED:
        return "This PEP is now complete."
    if status != Status.RUNNING:
        return ""
    if not opened:
        return "Nothing more is needed from anyone until the PEP's next date or a change is reported."
    steps = []
    for task in opened[:4]:
        who = (
            "you"
            if task.assignee_id == current_user.id
            else task.assignee_name
            if task.assignee_id
            else f"any {task.role_label}"
            if task.pooled
            else f"the {task.role_label}"
        )
        steps.append(f"{task.name} ({who}{', by ' + ukdate(task.due_at) if task.due_at else ''})")
    more = f", and {len(opened) - 4} more" if len(opened) > 4 else ""
    return f"Next: {'; '.join(steps)}{more}."


def _database_lost(form, child, data, draft, version, basis, exc):
    """The connection to the database was lost while the task's answers were posted (a failover, a
    restart): nothing of the request was applied. The answers are kept as a draft if the database is
    back already, and shown again either way, from what the request had read (503): the person
    submits again in a moment."""
    open_task = form["task"]
    current_app.logger.warning(
        "task %s: the database connection was lost (%s); nothing posted was applied", open_task.id, describe(exc)
    )
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
    return render_page(
        open_task, view, data, {}, draft, status=503, version=version, basis=basis, child=child, lost=lost
    )


def _show_again(open_task, values, errors, draft, version, **page):
    """The task page once more with what was posted (and the version the person opened), now with its
    instructions; if someone else's step has meanwhile completed or withdrawn the task, say so instead."""
    try:
        view = engine().task_view(db(), open_task.id, current_user.email)
    except TaskNotReady:
        db().rollback()
        return _no_longer_open(open_task.id, open_task.child_id, values, None)
    from . import tasklist

    if tasklist.is_sectioned(task_schema(view)) and not page.get("lost"):
        return tasklist.show_again(open_task, view, values, errors, draft, version, **page)
    reviewed = _reviewed(open_task, view)
    db().commit()
    return render_page(open_task, view, values, errors, draft, version=version, reviewed=reviewed, **page)


def _reviewed(open_task, view) -> Reviewed | None:
    """What the task's form says it reviews (`x-reviews`), for the person who may do the task (`view`
    is the engine's answer to them); the look at the PEP is written to the child's history."""
    declaration = task_schema(view).get(REVIEWS_KEY)
    if not declaration:
        return None
    instance = db().get(Instance, open_task.instance_id)
    record_view(open_task.child_id, "pep_document", instance_id=instance.id, task=open_task.name)
    return reviewed_pep(db(), instance, declaration)


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


def _no_longer_open(task_id: str, child_id: str, answers: dict, schema: dict | None, opened: bool = True):
    """The task ended while the person was filling it in (someone else completed it, a deadline or a
    reported change withdrew it): their answers are kept as a draft and shown to copy, and the page says
    what happened (409); not `opened` (the address followed once it had ended), only what happened
    (410). Nothing of a child they may not see is said (404)."""
    if not child_id or not may_view_child(current_user, child_id):
        abort(404)
    fate = task_fate(db(), child_id, task_id)
    if fate is None:
        abort(404)
    if answers:
        _save_draft(task_id, answers)
    db().commit()
    by = db().scalar(select(User.name).where(User.email == fate.by)) if fate.by else None
    if fate.by and fate.by == current_user.email:
        by = "You"
    written = [
        (
            str((schema or {}).get("properties", {}).get(key, {}).get("title") or key.replace("_", " ").capitalize()),
            plain(value),
        )
        for key, value in answers.items()
    ]
    child = db().get(Child, child_id)
    return render_template(
        "inbox/gone.html",
        fate=fate,
        by=by or fate.by,
        child=child,
        written=[(label, text) for label, text in written if text],
        opened=opened,
    ), (409 if opened else 410)


def render_page(
    open_task,
    view,
    values,
    errors,
    draft,
    status=200,
    conflict=None,
    anchor=None,
    version=None,
    basis=None,
    child=None,
    lost=None,
    reviewed=None,
):
    """The task page, with what the task reviews (`reviewed`) beside the form, carrying the version and
    the basis it was first built from (`version`, `basis`: a page shown again keeps those of the page
    the person opened). `lost` (the database connection was lost: "draft" if the answers were saved as
    one, "page" if they are only on the page) shows it from what was read before, without the database."""
    schema = task_schema(view)
    fields = build_fields(schema, values, errors)
    if lost != "page":
        _offer_choices(fields, case_team(db(), open_task.child_id))
    child = child or db().get(Child, open_task.child_id)
    attachments = {} if lost == "page" else file_links(schema, values, open_task.child_id)
    return render_template(
        "inbox/task.html",
        task=open_task,
        child=child,
        view=view,
        schema=schema,
        fields=fields,
        sections=sections(schema, fields),
        check_first=bool(schema.get("x-sections")),
        errors=sent_back(open_task) + error_summary(fields, errors),
        draft=draft,
        conflict=conflict,
        anchor=anchor,
        attachments=attachments,
        version=view["instance_version"] if version is None else version,
        basis=view.get("basis", "") if basis is None else basis,
        now=now(),
        lost=lost,
        reviewed=reviewed,
    ), status


def _offer_choices(fields, team: list[dict]) -> None:
    """Text answers whose form offers choices (`x-choices`) get them, as suggestions."""
    for f in fields:
        if f.widget == "text" and f.choices_from:
            f.options = [(text, text) for text in suggestions(f.choices_from, team)]
        _offer_choices(f.children, team)


def sent_back(open_task) -> list[dict]:
    """A task the diagram sent back says so, with why, at the top of its error summary."""
    return [{"text": f"Sent back: {open_task.sent_back}", "href": "#main-content"}] if open_task.sent_back else []


def _save_draft(task_id: str, data: dict, user_id: int | None = None) -> TaskDraft:
    """Keep `data` as the signed-in person's (or `user_id`'s) draft of the task."""
    user_id = current_user.id if user_id is None else user_id
    draft = db().get(TaskDraft, (task_id, user_id))
    if draft is None:
        draft = TaskDraft(task_id=task_id, user_id=user_id, data=data, saved_at=now())
        db().add(draft)
    else:
        draft.data, draft.saved_at = data, now()
    return draft


@bp.post("/tasks/<task_id>/claim")
@login_required
def claim(task_id):
    engine().claim(db(), task_id, current_user.email)
    db().commit()
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<task_id>/release")
@login_required
def release(task_id):
    engine().release(db(), task_id, current_user.email)
    db().commit()
    flash("The task is back in its pool.")
    return redirect(url_for("inbox.index"))
