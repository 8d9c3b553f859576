"""The auditors' pages: the children granted to them, a child's whole history in plain English with its
verification, the replay of one PEP on the diagram of the version that ran, and the audit pack.

Auditors read and never change: every request of theirs that could change something is refused here,
whatever page it targets. Every page about a child is written to that child's history.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from functools import wraps

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from engine.models import AccessGrant, Child, Instance, ProcessDefinition
from engine.replay import ChildReplay, replay_child
from engine.vocabulary import KIND_LABELS

from .access import child_or_404, visible_children_filter
from .audit_pack import pack, pack_pdf
from .audit_schemas import DiagramSchema, FrameSchema, PackSchema
from .context import as_download, db, engine, now
from .filters import LONDON, ukdate
from .grants import in_force
from .timeline import Entry, Filters, timeline

bp = Blueprint("audit", __name__, url_prefix="/audit")

# what an auditor may still post: signing in and out, and changing their own password
AUDITOR_POSTS = {"auth.sign_out", "auth.change_password", "auth.sign_in"}
KINDS = KIND_LABELS  # each kind of history event in plain English (engine/vocabulary.py)


@bp.before_app_request
def _auditors_change_nothing():
    """Refuse any change by an auditor, on every page of the app, before its view runs."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in AUDITOR_POSTS:
        return
    if current_user.is_authenticated and current_user.is_auditor:
        abort(403, description="Auditors can read records but not change them.")


def auditor_required(view):
    """Auditors, and the VS administrator (who answers complaints and care leavers' requests)."""

    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if not (current_user.is_auditor or current_user.is_admin):
            abort(403, description="These pages are for auditors.")
        return view(*args, **kwargs)

    return guarded


@bp.get("")
@auditor_required
def index():
    children = db().scalars(select(Child).where(visible_children_filter(current_user)).order_by(Child.name)).all()
    grants = (
        db()
        .scalars(
            select(AccessGrant)
            .where(AccessGrant.user_id == current_user.id, in_force(now()))
            .order_by(AccessGrant.granted_at)
        )
        .all()
    )
    names = {c.id: c.name for c in children}
    return render_template("audit/index.html", children=children, grants=grants, names=names)


@bp.get("/children/<child_id>")
@auditor_required
def child(child_id):
    filters = _filters()
    child = child_or_404(
        child_id, "audit timeline", **{k: str(v) for k, v in vars(filters).items() if v not in (None, "")}
    )
    replay = replay_child(db(), engine(), child_id)
    entries = timeline(db(), replay)
    db().commit()
    rows = [e for e in entries if filters.keep(e)]
    context = {
        "child": child,
        "rows": rows,
        "filters": filters,
        "kinds": KINDS,
        "total": len(entries),
        "args": request.args,
    }
    if request.headers.get("HX-Request"):
        return render_template("audit/_rows.html", **context)
    return render_template("audit/child.html", replay=replay, choices=_choices(child_id, entries), **context)


@bp.get("/children/<child_id>/verification")
@auditor_required
def verification(child_id):
    child = child_or_404(child_id, "audit verification")
    replay = replay_child(db(), engine(), child_id)
    db().commit()
    template = "audit/_verification.html" if request.headers.get("HX-Request") else "audit/verification.html"
    return render_template(template, child=child, replay=replay)


@bp.get("/children/<child_id>/instances/<int:instance_id>/replay")
@auditor_required
def replay(child_id, instance_id):
    child = child_or_404(child_id, "audit replay", instance_id=instance_id)
    instance = db().get(Instance, instance_id)
    if instance is None or instance.child_id != child_id:
        abort(404)
    result = replay_child(db(), engine(), child_id)
    db().commit()
    frames = replay_frames(result, timeline(db(), result), instance_id)
    diagrams = [_diagram(d) for d in sorted({f["definition_id"] for f in frames if f["definition_id"]})]
    return render_template(
        "audit/replay.html",
        child=child,
        instance=instance,
        replay=result,
        payload={"frames": frames, "diagrams": diagrams},
    )


@bp.get("/children/<child_id>/pack.json")
@auditor_required
def pack_json(child_id):
    child_or_404(child_id, "audit pack (JSON)")
    body = PackSchema().dumps(pack(db(), engine(), child_id, current_user.email, now()), ensure_ascii=False)
    db().commit()
    return Response(body, mimetype="application/json", headers=as_download(f"audit-pack-{child_id}.json"))


@bp.get("/children/<child_id>/pack.pdf")
@auditor_required
def pack_as_pdf(child_id):
    child_or_404(child_id, "audit pack (PDF)")
    pdf = pack_pdf(pack(db(), engine(), child_id, current_user.email, now()))
    db().commit()
    return Response(pdf, mimetype="application/pdf", headers=as_download(f"audit-pack-{child_id}.pdf"))


def replay_frames(replay: ChildReplay, entries: list[Entry], instance_id: int) -> list[dict]:
    """The frames of one instance, each with its event described, as the page script reads them."""
    frames = []
    for frame, entry in zip(replay.frames, entries, strict=True):
        if frame.instance_id != instance_id:
            continue
        frames.append(
            {
                "seq": frame.seq,
                "kind": frame.event.kind,
                "at": frame.event.at,
                "when": ukdate(frame.event.at, time=True),
                "who": entry.who,
                "what": entry.what,
                "instance_id": frame.instance_id,
                "definition_id": frame.definition_id,
                "completed": frame.completed,
                "active": frame.active,
                "data": json.loads(json.dumps(frame.data, default=str)),
                "check": frame.check,
                "changes": [vars(c) for c in entry.changes],
                "callouts": entry.callouts,
            }
        )
    return FrameSchema(many=True).dump(frames)


def _diagram(definition_id: int) -> dict:
    definition = db().get(ProcessDefinition, definition_id)
    file = definition.deployment.file(definition.file_path)
    return DiagramSchema().dump(
        {
            "definition_id": definition.id,
            "name": definition.name,
            "version": definition.deployment.version,
            "xml": file.content if file else "",
        }
    )


def _filters() -> Filters:
    args = request.args
    instance = args.get("instance", "")
    return Filters(
        instance=int(instance) if instance.isdigit() else None,
        kind=args.get("kind") or None,
        person=args.get("person") or None,
        since=_day(args.get("from")),
        until=_day(args.get("to"), next_day=True),
    )


def _day(value: str | None, next_day: bool = False) -> datetime | None:
    """The start of a day in London (or of the day after), from an ISO date."""
    try:
        day = date.fromisoformat(value or "")
        return datetime.combine(day + timedelta(days=1 if next_day else 0), time(0), LONDON)
    except (ValueError, OverflowError):  # not a date, or the last day there is (9999-12-31): no bound
        return None


def _choices(child_id: str, entries: list[Entry]) -> dict:
    instances = db().scalars(select(Instance).where(Instance.child_id == child_id).order_by(Instance.started_at)).all()
    people = {}
    for entry in entries:
        people.setdefault(entry.actor, entry.who)
    return {
        "instances": [
            (str(i.id), f"{i.definition.name}, started {i.started_at:%d/%m/%Y} ({i.status})") for i in instances
        ],
        "kinds": [(k, KINDS.get(k, k)) for k in dict.fromkeys(e.kind for e in entries)],
        "people": sorted(people.items(), key=lambda p: p[1]),
        "instance_rows": instances,
    }
