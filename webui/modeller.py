"""The process owners' modeller: deployed processes, the diagram editor, and the forms editor.

Every save goes through engine.deploy: the newest deployment with one file replaced is validated
like any deployment and, when valid, stored as the next version. Running PEPs stay on their version.
Deleting a diagram, once confirmed, is the explicit retirement of its processes.
Only process owners reach any page or endpoint here (403 for everyone else).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from lxml import etree
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, select

from engine.calendar import EXPRESSION_FUNCTIONS
from engine.deploy import (
    NS,
    Bundle,
    DeploymentRejected,
    check_deployment,
    check_form,
    deploy_changes,
    file_name_problem,
    lane_warnings,
    latest_bundle,
)
from engine.deployments import newest_deployment
from engine.models import Deployment, DeploymentFile, Instance, ProcessDefinition, Role
from engine.roles import RoleDirectory
from engine.vocabulary import Status

from .access import process_owner_required
from .context import db
from .formschema import build_fields

bp = Blueprint("modeller", __name__, url_prefix="/processes")

NOTE_LENGTH = 500
NEW_FORM = {
    "type": "object",
    "title": "New form",
    "required": ["done"],
    "properties": {"done": {"type": "boolean", "title": "Is it done?"}},
}


@bp.before_request
@login_required
@process_owner_required
def _process_owners_only():
    """Every page and JSON endpoint of the modeller is for process owners only."""


@bp.errorhandler(ValidationError)
def _invalid_request(invalid: ValidationError):
    return _answer(False, f"The request is not a valid save: {invalid.messages}", status=400)


@bp.errorhandler(DeploymentRejected)
def _nothing_deployed(rejected: DeploymentRejected):
    return render_template("error.html", code=404, description=str(rejected)), 404


# ---- JSON shapes ---------------------------------------------------------------------------------


class SaveRequest(Schema):
    """A diagram from the editor, and the deployment version it was opened from."""

    xml = fields.String(required=True, validate=validate.Length(min=1))
    version = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=2**31 - 1)
    )  # a version the database can hold
    note = fields.String(load_default="", validate=validate.Length(max=NOTE_LENGTH))


class ErrorOut(Schema):
    file = fields.String()
    element = fields.String(attribute="element_id", allow_none=True)
    message = fields.String()
    line = fields.Integer(allow_none=True)


class SaveResponse(Schema):
    ok = fields.Boolean()
    message = fields.String()
    errors = fields.List(fields.Nested(ErrorOut))
    warnings = fields.List(fields.Nested(ErrorOut))  # what does not stop a deployment (lanes that may have nobody)
    version = fields.Integer(allow_none=True)


class DiagramOut(Schema):
    process_id = fields.String()
    file = fields.String()
    version = fields.Integer()
    xml = fields.String()


class RoleOut(Schema):
    key = fields.String()
    label = fields.String()
    aliases = fields.List(fields.String())


class FunctionOut(Schema):
    name = fields.String()
    signature = fields.String()
    help = fields.String()


class VocabularyOut(Schema):
    roles = fields.List(fields.Nested(RoleOut))
    forms = fields.List(fields.String())
    messages = fields.List(fields.String())
    functions = fields.List(fields.Nested(FunctionOut))


# ---- deployed processes and the diagram editor ---------------------------------------------------


@dataclass
class Change:
    """When a deployed file last changed: in which version, by whom, when."""

    version: int
    by: str
    at: datetime


@bp.route("")
def index():
    newest = _newest()
    definitions = sorted(newest.definitions, key=lambda d: d.name.casefold()) if newest else []
    changes = _last_changes(newest)
    # the versions pages (webui/versions.py) are linked when the app has them
    links = {
        name: name in current_app.view_functions for name in ("versions.index", "versions.migrate", "versions.upload")
    }
    return render_template(
        "modeller/index.html",
        newest=newest,
        definitions=definitions,
        changes=changes,
        links=links,
        retired=_retired_processes(newest),
    )


@bp.route("/<process_id>/edit")
def edit(process_id: str):
    definition = _definition_or_404(process_id)
    return render_template("modeller/edit.html", definition=definition)


@bp.route("/<process_id>/diagram.json")
def diagram(process_id: str):
    definition = _definition_or_404(process_id)
    newest = definition.deployment
    content = next(f.content for f in newest.files if f.path == definition.file_path)
    return jsonify(
        DiagramOut().dump(
            {"process_id": process_id, "file": definition.file_path, "version": newest.version, "xml": content}
        )
    )


@bp.route("/vocabulary.json")
def vocabulary():
    bundle = latest_bundle(db())
    roles = db().scalars(select(Role).order_by(Role.label)).all()
    return jsonify(
        VocabularyOut().dump(
            {
                "roles": roles,
                "forms": [path.removeprefix("forms/") for path in _schema_files(bundle)],  # what a user task may name
                "messages": _message_names(bundle),
                "functions": [
                    {"name": name, "signature": _signature(function), "help": _first_line(function.__doc__)}
                    for name, function in sorted(EXPRESSION_FUNCTIONS.items())
                ],
            }
        )
    )


def _save_request() -> dict:
    """The editor's request: JSON that the standard parser reads (not nested past its depth) and whose
    strings are text (JSON's escapes can carry a NUL or half a character), as SaveRequest."""
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except (ValueError, RecursionError):
        raise ValidationError({"xml": ["The request could not be read: reload the page and try again."]}) from None
    if not isinstance(body, dict):
        raise ValidationError({"xml": ["The request could not be read: reload the page and try again."]})
    if any(isinstance(value, str) and not _is_text(value) for value in body.values()):
        raise ValidationError({"xml": ["The diagram or note holds a character that is not text: remove it."]})
    return SaveRequest().load(body)


@bp.route("/<process_id>/check", methods=["POST"])
def check(process_id: str):
    definition = _definition_or_404(process_id)
    save = _save_request()
    try:
        check_deployment(db(), Bundle({definition.file_path: save["xml"]}))
    except DeploymentRejected as rejected:
        return _answer(
            False, f"{len(rejected.errors)} problem(s) to fix before this can be deployed.", rejected.errors, status=422
        )
    warnings = _warnings(definition.file_path, save["xml"])
    return _answer(
        True,
        "No problems found: this diagram can be deployed"
        + (f", with {len(warnings)} warning(s)." if warnings else "."),
        warnings=warnings,
    )


@bp.route("/<process_id>/deploy", methods=["POST"])
def deploy(process_id: str):
    definition = _definition_or_404(process_id)
    save = _save_request()
    path = definition.file_path
    stale = _changed_since(path, save["version"])
    if stale:
        return _answer(False, stale, status=409)
    note = save["note"].strip() or f"Changed {path.removeprefix('processes/')} in the modeller"
    try:
        deployment, created = deploy_changes(db(), {path: save["xml"]}, current_user.email, note)
    except DeploymentRejected as rejected:
        return _answer(False, f"Not deployed: {len(rejected.errors)} problem(s) to fix.", rejected.errors, status=422)
    db().commit()
    if not created:
        return _answer(
            True,
            f"Nothing to deploy: these files are already version {deployment.version}.",
            version=deployment.version,
        )
    warnings = _warnings(path, save["xml"])
    return _answer(
        True,
        f"Deployed as version {deployment.version}. Running PEPs stay on the version they started on; "
        "new PEPs use this one." + (f" {len(warnings)} warning(s)." if warnings else ""),
        version=deployment.version,
        warnings=warnings,
    )


def _warnings(path: str, xml: str) -> list:
    """What deploy warns of in the diagram (lanes whose tasks may find nobody): it deploys all the same."""
    return lane_warnings(Bundle({path: xml}), RoleDirectory.load(db()))


@dataclass
class Retiring:
    """A process that deleting its diagram retires, and what that stops."""

    definition: ProcessDefinition
    running: int  # its PEPs still running, on any version: they carry on


@bp.route("/<process_id>/delete", methods=["GET", "POST"])
def delete(process_id: str):
    """Delete the diagram that holds the process: the explicit, confirmed retirement of its processes."""
    definition = _definition_or_404(process_id)
    newest, path = definition.deployment, definition.file_path
    retiring = _retiring(newest, path)
    errors, problems = [], []
    note = ""
    if request.method == "POST":
        note = request.form.get("note", "").strip()[:NOTE_LENGTH]
        stale = _changed_since(path, request.form.get("version", type=int) or 0)
        if stale:
            errors.append(("confirm", stale))
        elif request.form.get("confirm") != "yes":
            errors.append(
                (
                    "confirm",
                    f"Confirm that {path.removeprefix('processes/')} is to be deleted and its processes retired",
                )
            )
        else:
            ids = [r.definition.process_id for r in retiring]
            note = note or f"Deleted {path.removeprefix('processes/')} in the modeller, retiring {', '.join(ids)}"
            try:
                deployment, _created = deploy_changes(db(), {}, current_user.email, note, retire=ids)
            except DeploymentRejected as rejected:
                db().rollback()
                problems = rejected.errors
                errors.append(("confirm", f"Nothing was deleted: {len(problems)} problem(s) to fix first."))
            else:
                db().commit()
                flash(
                    f"Deleted {path.removeprefix('processes/')} and retired {', '.join(ids)} in version "
                    f"{deployment.version}. New PEPs no longer start it; running PEPs carry on.",
                    "success",
                )
                return redirect(url_for(".index"))
    return render_template(
        "modeller/delete.html",
        definition=definition,
        path=path,
        retiring=retiring,
        version=newest.version,
        note=note,
        errors=errors,
        problems=problems,
    ), 400 if problems or errors else 200


def _retiring(newest: Deployment, path: str) -> list[Retiring]:
    definitions = sorted((d for d in newest.definitions if d.file_path == path), key=lambda d: d.process_id)
    running = dict(
        db()
        .execute(
            select(ProcessDefinition.process_id, func.count(Instance.id))
            .join(Instance)
            .where(
                ProcessDefinition.process_id.in_([d.process_id for d in definitions]), Instance.status == Status.RUNNING
            )
            .group_by(ProcessDefinition.process_id)
        )
        .all()
    )
    return [Retiring(d, running.get(d.process_id, 0)) for d in definitions]


# ---- forms -------------------------------------------------------------------------------------


@bp.route("/forms")
def forms():
    bundle = latest_bundle(db())
    names = [path.removeprefix("forms/") for path in bundle.form_files()]
    return render_template("modeller/forms.html", names=names, titles={n: _title(bundle, n) for n in names})


@bp.route("/forms/<name>")
def form(name: str):
    bundle = latest_bundle(db())
    content = _form_or_404(bundle, name)
    return render_template("modeller/form.html", name=name, content=content, preview=_preview(name, content))


@bp.route("/forms/<name>/edit", methods=["GET", "POST"])
def edit_form(name: str):
    bundle = latest_bundle(db())
    content = _form_or_404(bundle, name)
    if request.method == "POST":
        return _save_form(name, new=False)
    return render_template(
        "modeller/form_edit.html",
        name=name,
        content=content,
        version=_newest().version,
        note="",
        errors=[],
        preview=_preview(name, content),
    )


@bp.route("/forms/new", methods=["GET", "POST"])
def new_form():
    if request.method == "POST":
        return _save_form(request.form.get("name", "").strip(), new=True)
    newest = _newest() or abort(404)
    content = json.dumps(NEW_FORM, indent=2)
    return render_template(
        "modeller/form_edit.html",
        name="",
        content=content,
        version=newest.version,
        note="",
        errors=[],
        preview=_preview("new.schema.json", content),
        new=True,
    )


@bp.route("/forms/preview", methods=["POST"])
def preview_form():
    name = request.form.get("name", "").strip() or "new.schema.json"
    return render_template("modeller/_preview.html", preview=_preview(name, request.form.get("content", "")))


def _save_form(name: str, new: bool):
    content = request.form.get("content", "")
    note = request.form.get("note", "").strip()[:NOTE_LENGTH]
    version = request.form.get("version", type=int) or 0
    path = f"forms/{name}"
    errors = []
    problem = file_name_problem(path) if new else None  # the rule `pep deploy` and the upload apply too
    if problem:
        errors.append(("name", problem))
    elif new and path in latest_bundle(db()).files:
        errors.append(("name", f"There is already a form called {name}"))
    stale = None if new else _changed_since(path, version)
    if stale:
        errors.append(("content", stale))
    if not errors:
        note = note or f"{'Added' if new else 'Changed'} form {name} in the forms editor"
        try:
            deployment, created = deploy_changes(db(), {path: content}, current_user.email, note)
        except DeploymentRejected as rejected:
            errors += [("content", str(error)) for error in rejected.errors]
        else:
            db().commit()
            flash(
                f"Saved {name} as version {deployment.version}." if created else f"{name} has not changed.", "success"
            )
            return redirect(url_for(".form", name=name))
    shown = _preview("new.schema.json" if problem else name, content)
    return render_template(
        "modeller/form_edit.html",
        name=name,
        content=content,
        version=version,
        note=note,
        errors=errors,
        preview=shown,
        new=new,
    ), 400


@dataclass
class Preview:
    """A form as the person doing the task would see it, or why it cannot be shown."""

    fields: list
    problems: list[str]


def _preview(name: str, content: str) -> Preview:
    if name.endswith(".uischema.json"):
        return Preview(
            [],
            [problem.message for problem in check_form(f"forms/{name}", content)]
            or ["A UI schema says how another form is laid out: it has no preview of its own."],
        )
    problems = [
        error.message if error.element_id in (None, "(root)") else f"{error.element_id}: {error.message}"
        for error in check_form(f"forms/{name}", content)
    ]
    if problems:
        return Preview([], problems)
    try:
        return Preview(build_fields(json.loads(content), {}), [])
    except (AttributeError, KeyError, TypeError) as exc:  # a valid JSON Schema that no task form could show
        return Preview([], [f"The form cannot be shown: {type(exc).__name__} {exc}"])


# ---- helpers -------------------------------------------------------------------------------------


def _newest() -> Deployment | None:
    return newest_deployment(db())


def _definition_or_404(process_id: str) -> ProcessDefinition:
    newest = _newest()
    definition = next((d for d in newest.definitions if d.process_id == process_id), None) if newest else None
    if definition is None:
        abort(404)
    return definition


def _form_or_404(bundle: Bundle, name: str) -> str:
    if f"forms/{name}" not in bundle.form_files():
        abort(404)
    return bundle.files[f"forms/{name}"]


def _schema_files(bundle: Bundle) -> list[str]:
    """The forms a user task can name: every form but the UI schemas."""
    return [path for path in bundle.form_files() if not path.endswith(".uischema.json")]


def _title(bundle: Bundle, name: str) -> str:
    try:
        return str(bundle.form(name).get("title") or "")
    except (ValueError, AttributeError):
        return ""


def _last_changes(newest: Deployment | None) -> dict[str, Change]:
    """For each file of the newest deployment, the version in which it last changed."""
    if newest is None:
        return {}
    rows = (
        db()
        .execute(
            select(
                DeploymentFile.path,
                DeploymentFile.sha256,
                Deployment.version,
                Deployment.created_by,
                Deployment.created_at,
            )
            .join(Deployment, Deployment.id == DeploymentFile.deployment_id)
            .order_by(Deployment.version.desc())
        )
        .all()
    )
    changes: dict[str, Change] = {}
    unchanged_since = {f.path: f.sha256 for f in newest.files}
    for path, sha, version, by, at in rows:
        if unchanged_since.get(path) == sha:
            changes[path] = Change(version, by, at)
        else:
            unchanged_since.pop(path, None)  # an older version differs: the change is the one already found
    return changes


def _retired_processes(newest: Deployment | None) -> list[tuple[str, int]]:
    """The processes retired on purpose and not deployed again since, each with the version that retired it."""
    current = {d.process_id for d in newest.definitions} if newest else set()
    retired: dict[str, int] = {}
    for version, process_ids in db().execute(
        select(Deployment.version, Deployment.retired)
        .where(Deployment.retired.is_not(None))
        .order_by(Deployment.version)
    ):
        retired |= {process_id: version for process_id in process_ids or []}
    return sorted((process_id, version) for process_id, version in retired.items() if process_id not in current)


def _changed_since(path: str, version: int) -> str | None:
    """Why saving `path` edited from `version` would overwrite someone's later change (None: it would not)."""
    newest = _newest()
    files = (
        db()
        .execute(
            select(Deployment.version, DeploymentFile.sha256)
            .join(DeploymentFile)
            .where(Deployment.version.in_([version, newest.version]), DeploymentFile.path == path)
        )
        .all()
    )
    shas = dict(files)
    if version == newest.version or (version in shas and shas[version] == shas.get(newest.version)):
        return None
    return (
        f"{path.split('/')[-1]} has changed since you opened version {version}: someone deployed a change "
        f"(the newest version is {newest.version}, by {newest.created_by}). Nothing was saved. Copy anything "
        "you need, then reload the page to edit the newest version."
    )


def _is_text(value: str) -> bool:
    """Whether a string is text a file or a database can keep: no NUL, and no half of a surrogate pair
    (`"\\ud800"` in JSON), which UTF-8 cannot encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _answer(ok: bool, message: str, errors=(), version: int | None = None, status: int = 200, warnings=()):
    body = SaveResponse().dump(
        {"ok": ok, "message": message, "errors": list(errors), "warnings": list(warnings), "version": version}
    )
    return jsonify(body), status


def _message_names(bundle: Bundle) -> list[str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    names = set()
    for path in bundle.bpmn_files():
        root = etree.fromstring(bundle.files[path].encode("utf-8"), parser)
        names |= {m.get("name") or m.get("id") for m in root.iterfind("bpmn:message", NS)}
    return sorted(names)


def _signature(function) -> str:
    code = function.__code__
    return f"{function.__name__}({', '.join(code.co_varnames[: code.co_argcount])})"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc else ""
