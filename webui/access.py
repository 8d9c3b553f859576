"""Who may see which child, and the record of every look. Every route about a child goes through here.

A person sees a child when they are in the child's case team, hold a role that sees all children
(Virtual School staff), or are an auditor with a grant in force for the child (webui/grants.py).
A child someone may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

from functools import wraps

from flask import abort, g
from flask_login import current_user
from sqlalchemy import exists, select

from engine import history
from engine.models import CaseTeamMember, Child, Role

from . import grants
from .context import db, now


def sees_all_children(person) -> bool:
    """Whether one of the person's roles sees every child (asked once per request)."""
    if "sees_all_children" not in g:
        g.sees_all_children = bool(person.roles) and bool(
            db().scalar(select(exists().where(Role.key.in_(person.roles), Role.sees_all_children)))
        )
    return g.sees_all_children


def may_view_child(person, child_id: str) -> bool:
    if sees_all_children(person):
        return True
    if db().scalar(select(exists().where(CaseTeamMember.child_id == child_id, CaseTeamMember.user_id == person.id))):
        return True
    return person.is_auditor and grants.covers(db(), person.id, child_id, now())


def visible_children_filter(person):
    """A WHERE clause limiting Child rows to those the person may see."""
    if sees_all_children(person):
        return Child.id.is_not(None)
    in_team = Child.id.in_(select(CaseTeamMember.child_id).where(CaseTeamMember.user_id == person.id))
    return (in_team | grants.granted_children(person.id, now())) if person.is_auditor else in_team


def child_or_404(child_id: str, page: str, **details) -> Child:
    """The child, if the signed-in person may see them; the look is written to the child's history."""
    child = db().get(Child, child_id)
    if child is None or not may_view_child(current_user, child_id):
        abort(404)
    record_view(child_id, page, **details)
    return child


def record_view(child_id: str, page: str, **details) -> None:
    """Write that the signed-in person looked at part of a child's record (committed by the caller)."""
    history.append(
        db(),
        child_id,
        [{"kind": "record_viewed", "actor": current_user.email, "data": {"page": page, **details}}],
        now(),
    )


def process_owner_required(view):
    """Refuse (403) anyone who is not a process owner: only they change processes and forms."""

    @wraps(view)
    def guarded(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_process_owner:
            abort(403)
        return view(*args, **kwargs)

    return guarded
