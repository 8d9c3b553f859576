"""A long form as GOV.UK's task list ("Complete multiple tasks"): one page per section (`x-sections`).

Called by the task page (webui/inbox.py) for a form that declares sections: its address shows the task
list, each section is a page of its own, then "Check your answers" and Submit. The answers are kept as
the person's draft of the task as they go; a section is "Completed" when its answers were checked on
its own page. The engine still checks every answer, all together, when the task is submitted: the web
only splits the pages, and a refusal takes the person to the section holding the first problem.
"""

from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError

from engine.db import connection_lost
from engine.forms import drop_unasked, field_errors
from engine.models import Child, TaskDraft

from .access import record_view
from .context import db, engine, now
from .formschema import (
    Section,
    build_fields,
    error_summary,
    sections,
    task_schema,
)
from .inbox import (
    _database_lost,
    _detach,
    _offer_choices,
    _reviewed,
    _save_draft,
    _task_for_person,
    bp,
    edit_draft,
    page_read,
    posted_answers,
    sent_back,
)
from .prefill import case_team, prefill
from .uploads import (
    as_kept,
    file_links,
    files_named,
    remove_left,
)

COMPLETED, IN_PROGRESS, NOT_STARTED, CANNOT_START = "Completed", "In progress", "Not yet started", "Cannot start yet"


def is_sectioned(schema: dict) -> bool:
    """Whether a form is shown as a task list: it declares its sections."""
    return isinstance(schema.get("x-sections"), list) and bool(schema["x-sections"])


def form_sections(schema: dict, values: dict | None = None, errors: dict | None = None) -> list[Section]:
    """The form's sections, numbered from 1 by their place in the list, with their fields filled in."""
    return sections(schema, build_fields(schema, values or {}, errors or {}))


def names_in(section: Section) -> list[str]:
    """The form's top-level questions a section asks, those it reveals under an answer too."""
    names = []

    def walk(fields):
        for f in fields:
            names.append(f.path)
            for revealed in f.revealed.values():
                walk(revealed)

    walk(section.fields)
    return names


def section_of(path: str, parts: list[Section]) -> int | None:
    """The number of the section holding the answer at `path` ("targets.0.what"), or None."""
    top = path.split(".")[0]
    return next((number for number, section in enumerate(parts, 1) if top in names_in(section)), None)


def status(number: int, section: Section, draft: TaskDraft | None) -> str:
    """A section's status on the task list: Completed once checked on its page, In progress once anything
    in it is answered, else Not yet started."""
    if draft is not None and number in (draft.sections_done or []):
        return COMPLETED
    answered = draft is not None and any(draft.data.get(name) not in (None, "", [], {}) for name in names_in(section))
    return IN_PROGRESS if answered else NOT_STARTED


def _mark(draft: TaskDraft, done: set[int]) -> None:
    draft.sections_done = sorted(done)


def _done(draft: TaskDraft | None) -> set[int]:
    return set(draft.sections_done or []) if draft is not None else set()


def _starting_answers(schema: dict, view_data: dict, child_id: str, draft: TaskDraft | None) -> dict:
    """The answers so far: the draft, or (before there is one) what the app fills in itself (`x-prefill`)."""
    if draft is not None:
        return dict(draft.data)
    return prefill(schema, view_data, case_team(db(), child_id), current_user.email)


def task_list_page(open_task, view, draft, errors=None, conflict=None, status_code=200):
    """The task list of a long form: each section with its status, then Check your answers and submit."""
    schema = task_schema(view)
    parts = form_sections(schema)
    rows = [
        {"number": n, "title": s.title or "Your answers", "status": status(n, s, draft)} for n, s in enumerate(parts, 1)
    ]
    finished = sum(row["status"] == COMPLETED for row in rows)
    child = db().get(Child, open_task.child_id)
    return render_template(
        "inbox/task_list.html",
        task=open_task,
        child=child,
        view=view,
        rows=rows,
        finished=finished,
        draft=draft,
        errors=sent_back(open_task) + (errors or []),
        conflict=conflict,
        now=now(),
        version=view["instance_version"],
        basis=view.get("basis", ""),
    ), status_code


def section_page(
    open_task,
    view,
    number,
    values,
    errors,
    draft,
    status_code=200,
    anchor=None,
    version=None,
    basis=None,
    elsewhere=None,
    conflict=None,
):
    """One section of a long form on its own page, with its errors in GOV.UK's error summary (`elsewhere`:
    problems in other sections, linking to their pages)."""
    schema = task_schema(view)
    fields = build_fields(schema, values, errors)
    _offer_choices(fields, case_team(db(), open_task.child_id))
    parts = sections(schema, fields)
    section = parts[number - 1]
    shown = Section("", section.id, section.fields)
    attachments = file_links(schema, values, open_task.child_id)
    summary = sent_back(open_task) + error_summary(
        section.fields, {k: v for k, v in errors.items() if k.split(".")[0] in names_in(section)}
    )
    return render_template(
        "inbox/task.html",
        task=open_task,
        child=db().get(Child, open_task.child_id),
        view=view,
        schema=schema,
        sections=[shown],
        section=section,
        number=number,
        count=len(parts),
        errors=summary + (elsewhere or []),
        draft=draft,
        conflict=conflict,
        anchor=anchor,
        attachments=attachments,
        now=now(),
        lost=None,
        reviewed=_reviewed(open_task, view),
        version=view["instance_version"] if version is None else version,
        basis=view.get("basis", "") if basis is None else basis,
    ), status_code


def show_again(open_task, view, values, errors, draft, version, basis, conflict=None, status=200, **_page):
    """A long form refused when submitted (or changed by someone else meanwhile): the section holding the
    first problem, its errors on it and the other sections' problems linking to their pages; the task list
    when no section holds them. Sections with problems are no longer Completed."""
    schema = task_schema(view)
    parts = form_sections(schema, values, errors)
    where = {path: section_of(path, parts) for path in errors}
    if draft is not None and any(where.values()):
        _mark(draft, _done(draft) - set(where.values()))
        db().commit()
    first = next((n for n in where.values() if n), None)
    if first is None or conflict:
        summary = [
            {"text": message, "href": _href(open_task.id, where[path], path)} for path, message in errors.items()
        ]
        return task_list_page(open_task, view, draft, errors=summary, conflict=conflict, status_code=status)
    elsewhere = [
        {"text": message, "href": _href(open_task.id, where[path], path)}
        for path, message in errors.items()
        if where[path] not in (first, None)
    ]
    return section_page(
        open_task, view, first, values, errors, draft, status, version=version, basis=basis, elsewhere=elsewhere
    )


def _href(task_id: str, number: int | None, path: str) -> str:
    if number is None:
        return "#main-content"
    return url_for("inbox.section", task_id=task_id, number=number) + "#f-" + path.replace(".", "-")


@bp.get("/tasks/<task_id>/sections/<int:number>")
@login_required
def section(task_id, number):
    view = _task_for_person(engine().task_view, task_id)
    schema, open_task = task_schema(view), view["task"]
    if not is_sectioned(schema):
        return redirect(url_for("inbox.task", task_id=task_id))
    if not 1 <= number <= len(form_sections(schema)):
        abort(404)
    draft = db().get(TaskDraft, (task_id, current_user.id))
    record_view(open_task.child_id, "task", task=open_task.name)
    values = _starting_answers(schema, view["data"], open_task.child_id, draft)
    db().commit()
    return section_page(open_task, view, number, values, {}, draft)


@bp.post("/tasks/<task_id>/sections/<int:number>")
@login_required
def save_section(task_id, number):
    """A section's answers: kept in the draft, with the rest of the form's; checked on "Save and continue"."""
    draft = db().get(TaskDraft, (task_id, current_user.id))  # the person's own: read before the engine's check
    # Before there is a draft the answers start from what the app fills in, from the process data as well
    form = _task_for_person(engine().task_form if draft else engine().task_view, task_id)
    open_task, schema = form["task"], task_schema(form)
    parts = form_sections(schema)
    if not is_sectioned(schema) or not 1 <= number <= len(parts):
        abort(404)
    names = names_in(parts[number - 1])
    asked = {
        "type": "object",
        "properties": {n: schema["properties"][n] for n in names},
        "required": [n for n in schema.get("required") or [] if n in names],
    }
    posted, _ = posted_answers(asked, open_task.child_id, None)
    earlier = _starting_answers(schema, form.get("data", {}), open_task.child_id, draft)
    data = {name: value for name, value in earlier.items() if name not in names} | posted
    before = files_named(schema, data) | files_named(schema, draft.data if draft else None)
    version, basis = page_read(form)
    action = request.form.get("_do", "continue")
    if action.startswith("detach:"):
        _detach(schema, data, action[7:])
    kind, _, path = action.partition(":")
    try:
        refused = edit_draft(schema, data, action, open_task.child_id)
        if refused:
            db().rollback()
            return _again(open_task, number, as_kept(data), refused, draft, version, basis, status_code=422)
        draft = _save_draft(task_id, data)
        errors = {}
        if action == "continue":
            errors = {
                path: message
                for path, message in field_errors(json.dumps(schema), drop_unasked(schema, data)).items()
                if path.split(".")[0] in names
            }
        _mark(draft, _done(draft) | {number} if action == "continue" and not errors else _done(draft) - {number})
        remove_left(schema, before, data, open_task.child_id, current_user.email)
        db().commit()
    except SQLAlchemyError as exc:
        if not connection_lost(exc):
            raise
        return _database_lost(form, db().get(Child, open_task.child_id), as_kept(data), draft, version, basis, exc)
    if kind in ("add", "remove", "detach"):
        return _again(open_task, number, data, {}, draft, version, basis, anchor=path)
    if errors:
        return _again(open_task, number, data, errors, draft, version, basis, status_code=422)
    if action == "save":
        flash("Your answers are saved. You can come back to this task from your inbox.")
    return redirect(url_for("inbox.task", task_id=task_id))


def _again(open_task, number, values, errors, draft, version, basis, status_code=200, anchor=None):
    view = engine().task_view(db(), open_task.id, current_user.email)
    page = section_page(
        open_task, view, number, values, errors, draft, status_code, anchor=anchor, version=version, basis=basis
    )
    db().commit()
    return page
