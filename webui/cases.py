"""A child's record: current and earlier PEPs, who holds each open step, documents, attachments,
and reporting a change (a message to the child's PEPs; which changes are offered, and what they do to
the child's record, is engine/caselife.py's). Every look is written to history.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from engine import caselife, lists
from engine.attachments import files_in_record
from engine.calendar import academic_year_age, to_london
from engine.errors import EngineError, ProcessFault
from engine.forms import field_errors, size_errors
from engine.models import Attachment, CaseTeamMember, Instance, OpenTask, Role, School, User
from engine.people import case_team
from engine.vocabulary import Status

from .access import child_or_404, may_view_child, record_view, sees_all_children, visible_children_filter
from .context import as_download, db, engine, now, page_number, record_fault
from .documents import left_out_text, meeting_ics, next_meeting, pep_document, pep_pdf, pep_sections
from .exports import csv_response
from .formschema import build_fields, error_summary, parse_submission
from .links import link_allowed, may_issue

bp = Blueprint("cases", __name__)


def _children_filters() -> dict:
    """The children list's search and filters, as the address gives them."""
    args = request.args
    worker = args.get("social_worker") or ""
    return {
        "q": (args.get("q") or "").strip()[:200],
        "school": (args.get("school") or "")[:16],
        "in_care": args.get("in_care") if args.get("in_care") in ("yes", "no") else "",
        "social_worker": worker if worker.isdigit() and len(worker) < 12 and sees_all_children(current_user) else "",
    }


def _children_query(chosen: dict):
    return lists.children_query(
        visible_children_filter(current_user),
        chosen["q"],
        chosen["school"] or None,
        {"yes": True, "no": False}.get(chosen["in_care"]),
        int(chosen["social_worker"]) if chosen["social_worker"] else None,
    )


@bp.get("/children")
@login_required
def children():
    """The children the person may see, 50 a page: found by name, case number or UPN, filtered by school,
    whether in care and (for Virtual School staff) social worker."""
    chosen = _children_filters()
    page = lists.page_of(db(), _children_query(chosen), page_number())
    open_counts = dict(
        db()
        .execute(
            select(OpenTask.child_id, func.count())
            .where(OpenTask.child_id.in_([c.id for c in page.rows]))
            .group_by(OpenTask.child_id)
        )
        .all()
    )
    schools = db().execute(select(School.urn, School.name).order_by(School.name)).all()
    workers = (
        db()
        .execute(
            select(User.id, User.name)
            .where(User.id.in_(select(CaseTeamMember.user_id).where(CaseTeamMember.role_key == "social_worker")))
            .order_by(User.name)
        )
        .all()
        if sees_all_children(current_user)
        else []
    )
    return render_template(
        "cases/children.html", page=page, chosen=chosen, open_counts=open_counts, schools=schools, workers=workers
    )


@bp.get("/children.csv")
@login_required
def children_csv():
    """The children list, as filtered, as a spreadsheet (only children the person may see)."""
    if current_user.is_auditor:
        abort(403)  # auditors read records one by one, as granted; a list of children leaves with no one
    chosen = _children_filters()
    rows = [
        (
            c.id,
            c.name,
            c.date_of_birth.isoformat() if c.date_of_birth else "",
            c.upn,
            c.school,
            c.school_urn,
            caselife.LEGAL_STATUSES.get(c.legal_status, ""),
            c.entered_care.isoformat() if c.entered_care else "",
            "yes" if c.in_care else "no",
        )
        for c in db().scalars(_children_query(chosen))
    ]
    return csv_response(
        "children.csv",
        [
            "Child ID",
            "Name",
            "Date of birth",
            "UPN",
            "School name",
            "School URN",
            "Legal status",
            "Date entered care",
            "In care",
        ],
        rows,
    )


@bp.get("/children/<child_id>")
@login_required
def child(child_id):
    child = child_or_404(child_id, "child")
    instances = (
        db().scalars(select(Instance).where(Instance.child_id == child_id).order_by(Instance.started_at.desc())).all()
    )
    running = [i for i in instances if i.status == Status.RUNNING]
    tasks = db().scalars(select(OpenTask).where(OpenTask.child_id == child_id).order_by(OpenTask.due_at)).all()
    people = {
        u.id: u for u in db().scalars(select(User).where(User.id.in_({t.assignee_id for t in tasks if t.assignee_id})))
    }
    roles = dict(db().execute(select(Role.key, Role.label)).all())
    team = case_team(db(), child_id)
    attachments = (
        db()
        .scalars(
            select(Attachment)
            .where(Attachment.child_id == child_id, Attachment.removed_at.is_(None))
            .order_by(Attachment.uploaded_at.desc())
        )
        .all()
    )
    in_record = files_in_record(db(), child_id) if attachments else {}
    db().commit()
    read_only = current_user.is_auditor  # auditors may read the record, never act on it
    return render_template(
        "cases/child.html",
        child=child,
        running=running,
        earlier=[i for i in instances if i.status != Status.RUNNING],
        tasks=tasks,
        people=people,
        roles=roles,
        team=team,
        attachments=attachments,
        in_record=in_record,
        now=now(),
        age=academic_year_age(child.date_of_birth) if child.date_of_birth else None,
        meeting=next_meeting(db(), child_id, to_london(now()).date()),
        changes={} if read_only else caselife.reports_offered(db(), child, current_user.email),
        may_edit=caselife.may_edit_details(db(), current_user.email, child_id),
        may_withdraw=caselife.may_withdraw(db(), current_user.email),
        legal_statuses=caselife.LEGAL_STATUSES,
        areas=caselife.AREAS,
        linkable=set() if read_only else {t.id for t in tasks if link_allowed(t) and may_issue(t)},
    )


@bp.get("/children/<child_id>/peps/<int:instance_id>")
@login_required
def pep(child_id, instance_id):
    child = child_or_404(child_id, "pep_document", instance_id=instance_id)
    instance = _instance_of(child_id, instance_id)
    parts, left_out = pep_document(pep_sections(db(), instance))
    db().commit()
    return render_template(
        "cases/pep.html",
        child=child,
        instance=instance,
        parts=parts,
        left_out=left_out,
        left_out_text=left_out_text(left_out),
    )


@bp.get("/children/<child_id>/peps/<int:instance_id>.pdf")
@login_required
def pep_as_pdf(child_id, instance_id):
    child = child_or_404(child_id, "pep_pdf", instance_id=instance_id)
    instance = _instance_of(child_id, instance_id)
    pdf = pep_pdf(child, instance, pep_sections(db(), instance))
    db().commit()
    filename = f"PEP-{child.id}-{instance.started_at:%Y-%m-%d}.pdf"
    return Response(pdf, mimetype="application/pdf", headers=as_download(filename))


@bp.get("/children/<child_id>/next-meeting.ics")
@login_required
def meeting_invitation(child_id):
    child = child_or_404(child_id, "meeting_invitation")
    meeting = next_meeting(db(), child_id, to_london(now()).date())
    if meeting is None:
        abort(404)
    db().commit()
    return Response(
        meeting_ics(child, meeting, current_user.email, now()),
        mimetype="text/calendar",
        headers=as_download(f"PEP-meeting-{child.id}.ics"),
    )


@bp.get("/attachments/<attachment_id>")
@login_required
def attachment(attachment_id):
    item = db().get(Attachment, attachment_id)
    if item is None or item.removed_at is not None or not may_view_child(current_user, item.child_id):
        abort(404)
    record_view(item.child_id, "attachment", attachment=item.filename)
    db().commit()
    return Response(item.content, mimetype=item.content_type, headers=as_download(item.filename))


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
                sent = (
                    f"passed to {len(caught)} PEP{'s' if len(caught) != 1 else ''}"
                    if caught
                    else "no PEP was waiting for it"
                )
                flash(f"{schema.get('title', message)}: recorded for {child.name}; {sent}.", "success")
                return redirect(url_for("cases.child", child_id=child_id))
    db().commit()
    fields = build_fields(schema, data, errors)
    return render_template(
        "cases/change.html",
        child=child,
        schema=schema,
        fields=fields,
        message=message,
        errors=error_summary(fields, errors),
    ), 422 if errors else 200


def _instance_of(child_id: str, instance_id: int) -> Instance:
    instance = db().get(Instance, instance_id)
    if instance is None or instance.child_id != child_id:
        abort(404)
    return instance
