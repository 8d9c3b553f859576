"""Notifications: delivered by e-mail when SMTP is configured (`engine.mail`, called by the schedulers),
otherwise kept here so nothing is silently dropped: people read /notifications."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from engine.models import Child, Notification, Role, User

from .access import visible_children_filter
from .context import db

bp = Blueprint("outbox", __name__)


@bp.get("/notifications")
@login_required
def index():
    mine = or_(
        Notification.user_id == current_user.id,
        Notification.role_key.in_(current_user.roles or {""}) & Notification.user_id.is_(None),
    )
    query = select(Notification).order_by(Notification.created_at.desc()).limit(200)
    if not current_user.is_admin:  # only their own, and only about children they may see (now)
        seen = select(Child.id).where(visible_children_filter(current_user))
        query = query.where(mine, Notification.child_id.is_(None) | Notification.child_id.in_(seen))
    notes = db().scalars(query).all()
    names = dict(db().execute(select(User.id, User.name)).all())
    roles = dict(db().execute(select(Role.key, Role.label)).all())
    return render_template("outbox/index.html", notes=notes, names=names, roles=roles, everyone=current_user.is_admin)
