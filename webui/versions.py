"""Versions of a process: list, view, compare and download them, upload a diagram, move running PEPs.

A process owner's page set beside the modeller (webui.modeller). Uploads are deployed through
engine.deploy exactly as the modeller deploys; moves go through engine.migration, which records each
one in the child's history. A version that retired the process is listed and compared too. Only
process owners reach any page here (403 for everyone else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import Schema, fields
from sqlalchemy import func, select

from engine import migration
from engine.deploy import DeploymentRejected, deploy_changes, file_name_problem
from engine.errors import EngineError
from engine.models import Deployment, Instance, OpenTask, ProcessDefinition
from engine.vocabulary import Status

from .access import process_owner_required
from .context import as_download, db, engine

bp = Blueprint("versions", __name__, url_prefix="/processes")

NOTE_LENGTH = 500


@bp.before_request
@login_required
@process_owner_required
def _process_owners_only():
    """Every page here is for process owners only."""


@dataclass
class Candidate:
    """A running PEP on an older version, what it is doing, and whether it can move."""

    instance: Instance
    tasks: list[str]
    check: migration.Check


@dataclass
class Version:
    """One deployed version of a process, as the versions page lists it."""

    definition: ProcessDefinition
    changed: bool  # whether the process's file differs from the version before
    running: int
    retired = False


@dataclass
class Retirement:
    """A version that retired the process: it holds the process no more."""

    version: int
    by: str
    at: datetime
    note: str | None
    last: int  # the version before, the last to hold it
    start_messages: list[str]  # the messages that started it, and start it no more
    retired = True


class DiffMarkers(Schema):
    """What the diff page's script marks on the two diagrams: element ids by kind of change."""

    added = fields.List(fields.String())
    removed = fields.List(fields.String())
    changed = fields.List(fields.String())
    a_url = fields.String()
    b_url = fields.String()


@bp.route("/<process_id>/versions")
def index(process_id: str):
    versions = _versions(process_id)
    rows = sorted([*versions, *_retirements(process_id, versions)], key=_number, reverse=True)
    return render_template("versions/index.html", process_id=process_id, rows=rows, name=versions[0].definition.name)


@bp.route("/<process_id>/versions/<int:version>")
def show(process_id: str, version: int):
    definition = _definition_or_404(process_id, version)
    return render_template("versions/show.html", definition=definition, process_id=process_id, version=version)


@bp.route("/<process_id>/versions/<int:version>/download")
def download(process_id: str, version: int):
    definition = _definition_or_404(process_id, version)
    name = definition.file_path.split("/")[-1]
    return Response(_content(definition).encode("utf-8"), mimetype="application/xml", headers=as_download(name))


@bp.route("/<process_id>/diff")
def diff(process_id: str):
    versions = _versions(process_id)
    retirements = {r.version: r for r in _retirements(process_id, versions)}
    numbers = sorted([*(v.definition.deployment.version for v in versions), *retirements], reverse=True)
    held = [v.definition.deployment.version for v in versions]
    b = request.args.get("b", type=_version_number) or numbers[0]
    a = request.args.get("a", type=_version_number) or next((n for n in held if n < b), b)
    options = [(n, f"Version {n}" + (" (retired it)" if n in retirements else "")) for n in numbers]
    retired = next((r for n, r in sorted(retirements.items(), reverse=True) if n > held[0]), None)  # and not back
    if b in retirements:  # what changed is that the process is gone
        old = _holding(a, versions)
        return render_template(
            "versions/diff.html",
            process_id=process_id,
            name=old.name,
            a=old.deployment.version,
            b=b,
            changes=None,
            retirement=retirements[b],
            retired=retired,
            options=options,
            markers=None,
        )
    old, new = _holding(a, versions), _definition_or_404(process_id, b)
    a = old.deployment.version
    changes = migration.diff_diagrams(_content(old), _content(new), new.file_path)
    markers = DiffMarkers().dump(
        {
            "added": [c.id for c in changes.added],
            "removed": [c.id for c in changes.removed],
            "changed": [c.id for c in changes.changed],
            "a_url": url_for(".download", process_id=process_id, version=a),
            "b_url": url_for(".download", process_id=process_id, version=b),
        }
    )
    return render_template(
        "versions/diff.html",
        process_id=process_id,
        name=new.name,
        a=a,
        b=b,
        changes=changes,
        retirement=None,
        retired=retired,
        options=options,
        markers=markers,
    )


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    errors, problems = {}, []
    if request.method == "POST":
        file = request.files.get("diagram")
        note = (request.form.get("note") or "").strip()[:NOTE_LENGTH]
        name = (file.filename or "").replace("\\", "/").split("/")[-1] if file else ""
        content = None
        problem = file_name_problem(f"processes/{name}")  # the rule `pep deploy` and the forms editor apply too
        if not name:
            errors["diagram"] = "Choose a .bpmn file to upload"
        elif problem:
            errors["diagram"] = problem
        else:
            try:
                content = file.read().decode("utf-8")
            except UnicodeDecodeError:
                errors["diagram"] = f"{name} is not UTF-8 text: save it from the modeller again"
        if content is not None:
            path = f"processes/{name}"
            try:
                deployment, created = deploy_changes(
                    db(), {path: content}, current_user.email, note or f"Uploaded {name}"
                )
            except DeploymentRejected as rejected:
                db().rollback()
                problems = rejected.errors
                errors["diagram"] = f"{name} was not deployed: {len(problems)} problem(s) to fix. Nothing was changed."
            else:
                db().commit()
                flash(
                    f"{name} deployed as version {deployment.version}."
                    if created
                    else f"Nothing to deploy: these files are already version {deployment.version}.",
                    "success",
                )
                process = next((d.process_id for d in deployment.definitions if d.file_path == path), None)
                return redirect(url_for(".index", process_id=process) if process else url_for(".upload"))
    return render_template(
        "versions/upload.html", errors=errors, problems=problems, note=request.form.get("note", "")
    ), 422 if errors else 200


@bp.route("/<process_id>/migrate", methods=["GET", "POST"])
def migrate(process_id: str):
    newest = _versions(process_id)[0].definition
    if request.method == "POST":
        wanted = request.form.get("instance", type=int)
        targets = (
            [wanted] if wanted else [c.instance.id for c in migration.candidates(engine(), db(), newest) if c.safe]
        )
        moved, refused = [], []
        for instance_id in targets:  # one transaction each: a refusal leaves the others moved
            try:
                instance = migration.migrate(engine(), db(), instance_id, newest.id, current_user.email)
            except EngineError as exc:
                db().rollback()
                refused.append(str(exc))
            else:
                db().commit()
                moved.append(str(instance.id))  # a process owner sees PEPs by number, never a child's case number
        if moved:
            flash(
                f"Moved {len(moved)} PEP(s) to version {newest.deployment.version}: PEP " + ", ".join(moved) + ".",
                "success",
            )
        for message in refused:
            flash(message, "error")
        if not moved and not refused:
            flash("No PEP could be moved safely.", "error")
        return redirect(url_for(".migrate", process_id=process_id))
    rows = _checks(newest)
    return render_template(
        "versions/migrate.html", process_id=process_id, newest=newest, rows=rows, safe=sum(r.check.safe for r in rows)
    )


def _checks(newest: ProcessDefinition) -> list[Candidate]:
    checks = migration.candidates(engine(), db(), newest)
    tasks: dict[int, list[str]] = {}
    for instance_id, name in db().execute(
        select(OpenTask.instance_id, OpenTask.name)
        .where(OpenTask.instance_id.in_([c.instance.id for c in checks]))
        .order_by(OpenTask.ready_at)
    ):
        tasks.setdefault(instance_id, []).append(name)
    return [Candidate(c.instance, tasks.get(c.instance.id) or _waiting_for(c.instance), c) for c in checks]


def _waiting_for(instance: Instance) -> list[str]:
    waits = [f"Waiting for the message {m}" for m in instance.waiting_messages or []]
    if instance.next_timer_at:
        waits.insert(0, f"Waiting for a timer ({instance.next_timer_at:%d %b %Y %H:%M} UTC)")
    return waits


def _versions(process_id: str) -> list[Version]:
    """Every version that holds the process, newest first; 404 when none does."""
    definitions = (
        db()
        .scalars(
            select(ProcessDefinition)
            .join(Deployment)
            .where(ProcessDefinition.process_id == process_id)
            .order_by(Deployment.version.desc())
        )
        .all()
    )
    if not definitions:
        abort(404)
    running = dict(
        db()
        .execute(
            select(Instance.definition_id, func.count(Instance.id))
            .where(Instance.definition_id.in_([d.id for d in definitions]), Instance.status == Status.RUNNING)
            .group_by(Instance.definition_id)
        )
        .all()
    )
    shas = [_file(d).sha256 for d in definitions]
    return [
        Version(d, i + 1 == len(definitions) or shas[i] != shas[i + 1], running.get(d.id, 0))
        for i, d in enumerate(definitions)
    ]


def _retirements(process_id: str, versions: list[Version]) -> list[Retirement]:
    """The versions that retired the process, each with the last version before it that held it."""
    rows = (
        db()
        .execute(
            select(
                Deployment.version, Deployment.created_by, Deployment.created_at, Deployment.note, Deployment.retired
            ).order_by(Deployment.version)
        )
        .all()
    )
    found = []
    for version, by, at, note, retired in rows:
        if process_id in (retired or []):
            last = next((v.definition for v in versions if v.definition.deployment.version < version), None)
            if last is not None:
                found.append(
                    Retirement(version, by, at, note, last.deployment.version, list(last.start_messages or []))
                )
    return found


def _number(row: Version | Retirement) -> int:
    return row.version if row.retired else row.definition.deployment.version


def _version_number(value: str) -> int:
    """A version number from a query (ValueError, so that it counts as absent, when it is none)."""
    number = int(value)
    if not 0 < number < 2**31:
        raise ValueError(value)
    return number


def _holding(version: int, versions: list[Version]) -> ProcessDefinition:
    """The process as the newest version up to `version` that held it; 404 when none did."""
    definition = next((v.definition for v in versions if v.definition.deployment.version <= version), None)
    if definition is None:
        abort(404)
    return definition


def _definition_or_404(process_id: str, version: int) -> ProcessDefinition:
    definition = db().scalar(
        select(ProcessDefinition)
        .join(Deployment)
        .where(ProcessDefinition.process_id == process_id, Deployment.version == version)
    )
    if definition is None:
        abort(404)
    return definition


def _file(definition: ProcessDefinition):
    return definition.deployment.file(definition.file_path)


def _content(definition: ProcessDefinition) -> str:
    return _file(definition).content
