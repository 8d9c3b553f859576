"""Pages that change a child's record outside any PEP step: their details, and withdrawing a running
PEP with a reason. Who may do each is decided by engine/caselife.py; someone who may not see the
child gets 404, someone who sees the child but may not do it 403. Every look is written to history.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine import caselife
from engine.errors import EngineError, FormInvalid
from engine.models import Instance
from engine.vocabulary import Status

from .access import child_or_404
from .adminforms import DETAILS, WITHDRAW
from .context import db, engine, now

bp = Blueprint("caselife", __name__)


@bp.route("/children/<child_id>/details", methods=["GET", "POST"])
@login_required
def details(child_id):
    child = child_or_404(child_id, "child_details")
    if not caselife.may_edit_details(db(), current_user.email, child_id):
        abort(
            403,
            description="Only the VS Administrator or the child's social worker or personal adviser "
            "can change the child's details.",
        )
    errors, answers = {}, _answers_of(caselife.details_of(child))
    if request.method == "POST":
        answers = {key: (request.form.get(key) or "").strip() for key in answers}
        data, errors = DETAILS.read(request.form)
        values = {
            "name": data.get("name", ""),
            "school": data.get("school"),
            "legal_status": data.get("legal_status"),
            "date_of_birth": data.get("date_of_birth"),
            "in_area": {"in": True, "out": False}.get(data.get("in_area")),
        }
        if not errors:
            try:
                changes = caselife.edit_details(db(), child_id, values, current_user.email, now())
            except caselife.CaseLifeError as exc:
                db().rollback()
                errors = {"name": str(exc)}
            else:
                db().commit()
                flash(f"{child.name}'s details saved." if changes else "Nothing was changed.", "success")
                return redirect(url_for("cases.child", child_id=child_id))
    db().commit()
    return render_template(
        "cases/details.html",
        child=child,
        answers=answers,
        errors=errors,
        summary=DETAILS.summary(errors, request.form),
        statuses=list(caselife.LEGAL_STATUSES.items()),
        areas=list(caselife.AREAS.items()),
    ), 422 if errors else 200


def _answers_of(details: dict) -> dict[str, str]:
    """The details as the form's fields hold them (text, the date in three parts)."""
    year, month, day = (details["date_of_birth"] or "--").split("-")
    return {
        "name": details["name"] or "",
        "date_of_birth-day": day.lstrip("0"),
        "date_of_birth-month": month.lstrip("0"),
        "date_of_birth-year": year,
        "school": details["school"] or "",
        "legal_status": details["legal_status"] or "",
        "in_area": {True: "in", False: "out"}.get(details["in_area"], ""),
    }


@bp.route("/children/<child_id>/peps/<int:instance_id>/withdraw", methods=["GET", "POST"])
@login_required
def withdraw(child_id, instance_id):
    child = child_or_404(child_id, "withdraw_pep", instance_id=instance_id)
    if not caselife.may_withdraw(db(), current_user.email):
        abort(403, description="Only the VS Administrator or the VS Head can withdraw a PEP.")
    instance = db().get(Instance, instance_id)
    if instance is None or instance.child_id != child_id or instance.status != Status.RUNNING:
        abort(404)
    error, reason = None, ""
    if request.method == "POST":
        reason = request.form.get("reason", "")
        data, errors = WITHDRAW.read(request.form)
        try:
            if errors:
                raise FormInvalid(errors)
            engine().withdraw(db(), instance_id, current_user.email, data["reason"])
        except FormInvalid as exc:
            db().rollback()
            error = exc.errors.get("reason") or str(exc)
        except EngineError as exc:
            db().rollback()
            error = str(exc)
        else:
            db().commit()
            flash(f"{instance.definition.name} for {child.name} withdrawn.", "success")
            return redirect(url_for("cases.child", child_id=child_id))
    db().commit()
    return render_template(
        "cases/withdraw.html", child=child, instance=instance, reason=reason, error=error
    ), 422 if error else 200
