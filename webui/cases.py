"""A child's record: current and earlier PEPs, who holds each open step, documents, attachments,
and reporting a change (a message to the child's PEPs; which changes are offered, and what they do to
the child's record, is engine/caselife.py's). Every look is written to history.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from engine import caselife
from engine.attachments import files_in_record
from engine.calendar import academic_year_age, to_london
from engine.forms import field_errors, size_errors
from engine.models import Attachment, Child, Instance, OpenTask, Role, User
from engine.people import case_team
from engine.runtime import EngineError, ProcessFault

from .access import child_or_404, may_view_child, record_view, visible_children_filter
from .context import as_download, db, engine, now, record_fault
from .documents import left_out_text, meeting_ics, next_meeting, pep_document, pep_pdf, pep_sections
from .formschema import build_fields, error_summary, parse_submission
from .links import link_allowed, may_issue

bp = Blueprint("cases", __name__)


@bp.get("/children")
@login_required
def children():
    search = (request.args.get("q") or "").strip()
    query = select(Child).where(visible_children_filter(current_user)).order_by(Child.name)
    if search:
        query = query.where(func.lower(Child.name).like(f"%{search.lower()}%") | (Child.id == search))
    rows = db().scalars(query.limit(200)).all()
    open_counts = dict(db().execute(
        select(OpenTask.child_id, func.count()).where(OpenTask.child_id.in_([c.id for c in rows]))
        .group_by(OpenTask.child_id)
    ).all())
    return render_template("cases/children.html", children=rows, search=search, open_counts=open_counts)


@bp.get("/children/<child_id>")
@login_required
def child(child_id):
    child = child_or_404(child_id, "child")
    instances = db().scalars(select(Instance).where(Instance.child_id == child_id).order_by(Instance.started_at.desc())).all()
    running = [i for i in instances if i.status == "running"]
    tasks = db().scalars(select(OpenTask).where(OpenTask.child_id == child_id).order_by(OpenTask.due_at)).all()
    people = {u.id: u for u in db().scalars(select(User).where(User.id.in_({t.assignee_id for t in tasks if t.assignee_id})))}
    roles = dict(db().execute(select(Role.key, Role.label)).all())
    team = case_team(db(), child_id)
    attachments = db().scalars(select(Attachment).where(Attachment.child_id == child_id, Attachment.removed_at.is_(None))
                               .order_by(Attachment.uploaded_at.desc())).all()
    in_record = files_in_record(db(), child_id) if attachments else {}
    db().commit()
    read_only = current_user.is_auditor  # auditors may read the record, never act on it
    return render_template(
        "cases/child.html", child=child, running=running, earlier=[i for i in instances if i.status != "running"],
        tasks=tasks, people=people, roles=roles, team=team, attachments=attachments, in_record=in_record, now=now(),
        age=academic_year_age(child.date_of_birth) if child.date_of_birth else None,
        meeting=next_meeting(db(), child_id, to_london(now()).date()),
        changes={} if read_only else caselife.reports_offered(db(), child, current_user.email),
        may_edit=caselife.may_edit_details(db(), current_user.email, child_id),
        may_withdraw=caselife.may_withdraw(db(), current_user.email),
        legal_statuses=caselife.LEGAL_STATUSES, areas=caselife.AREAS,
        linkable=set() if read_only else {t.id for t in tasks if link_allowed(t) and may_issue(t)},
    )


@bp.get("/children/<child_id>/peps/<int:instance_id>")
@login_required
def pep(child_id, instance_id):
    child = child_or_404(child_id, "pep_document", instance_id=instance_id)
    instance = _instance_of(child_id, instance_id)
    parts, left_out = pep_document(pep_sections(db(), instance))
    db().commit()
    return render_template("cases/pep.html", child=child, instance=instance, parts=parts, left_out=left_out,
                           left_out_text=left_out_text(left_out))


@bp.get("/children/<child_id>/peps/<int:instance_id>.pdf")
@login_required
def pep_as_pdf(child_id, instance_id):
    child = child_or_404(child_id, "pep_pdf", instance_id=instance_id)
    instance = _instance_of(child_id, instance_id)
    pdf = pep_pdf(child, instance, pep_sections(db(), instance))
    db().commit()
    filename = f"PEP-{child.id}-{instance.started_at:%Y-%m-%d}.pdf"
    return Response(pdf, mimetype="application/pdf",
                    headers=as_download(filename))


@bp.get("/children/<child_id>/next-meeting.ics")
@login_required
def meeting_invitation(child_id):
    child = child_or_404(child_id, "meeting_invitation")
    meeting = next_meeting(db(), child_id, to_london(now()).date())
    if meeting is None:
        abort(404)
    db().commit()
    return Response(meeting_ics(child, meeting, current_user.email, now()), mimetype="text/calendar",
                    headers=as_download(f"PEP-meeting-{child.id}.ics"))


@bp.get("/attachments/<attachment_id>")
@login_required
def attachment(attachment_id):
    item = db().get(Attachment, attachment_id)
    if item is None or item.removed_at is not None or not may_view_child(current_user, item.child_id):
        abort(404)
    record_view(item.child_id, "attachment", attachment=item.filename)
    db().commit()
    return Response(item.content, mimetype=item.content_type,
                    headers=as_download(item.filename))


@bp.route("/children/<child_id>/changes/<message>", methods=["GET", "POST"])
@login_required
def report_change(child_id, message):
    child = child_or_404(child_id, f"report_{message}")
    offered = caselife.reports_offered(db(), child, current_user.email)
    if message not in offered:
        abort(404)
    schema = offered[message]
    errors, data = {}, {}
    if request.method == "POST":
        data = parse_submission(schema, request.form)
        errors = size_errors(data, schema) or field_errors(json.dumps(schema), data)
        if not errors:
            try:
                caught = engine().send_message(db(), message, child_id, data, actor=current_user.email)
            except ProcessFault as fault:
                errors = {"(form)": record_fault(fault, "message")}
            except EngineError as exc:
                db().rollback()
                errors = {"(form)": str(exc)}
            else:
                db().commit()
                sent = (f"passed to {len(caught)} PEP{'s' if len(caught) != 1 else ''}" if caught
                        else "no PEP was waiting for it")
                flash(f"{schema.get('title', message)}: recorded for {child.name}; {sent}.", "success")
                return redirect(url_for("cases.child", child_id=child_id))
    db().commit()
    fields = build_fields(schema, data, errors)
    return render_template("cases/change.html", child=child, schema=schema, fields=fields, message=message,
                           errors=error_summary(fields, errors)), 422 if errors else 200


def _instance_of(child_id: str, instance_id: int) -> Instance:
    instance = db().get(Instance, instance_id)
    if instance is None or instance.child_id != child_id:
        abort(404)
    return instance
