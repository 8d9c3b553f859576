"""Notifications: delivered by email when SMTP is configured, otherwise kept in an outbox page so
nothing is silently dropped. The scheduler calls `deliver_pending`; people read /notifications."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from engine.models import Notification, User, UserRole

from .context import db

bp = Blueprint("outbox", __name__)
log = logging.getLogger(__name__)


@bp.get("/notifications")
@login_required
def index():
    mine = or_(Notification.user_id == current_user.id,
               Notification.role_key.in_(current_user.roles or {""}) & Notification.user_id.is_(None))
    query = select(Notification).order_by(Notification.created_at.desc()).limit(200)
    if not current_user.is_admin:
        query = query.where(mine)
    notes = db().scalars(query).all()
    names = dict(db().execute(select(User.id, User.name)).all())
    return render_template("outbox/index.html", notes=notes, names=names, everyone=current_user.is_admin)


def recipients(session, note: Notification) -> list[str]:
    """Email addresses a notification goes to: its person, or everyone holding its role."""
    if note.user_id is not None:
        user = session.get(User, note.user_id)
        return [user.email] if user and user.active else []
    return list(session.scalars(
        select(User.email).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role_key == note.role_key, User.active)
    ))


def deliver_pending(config: dict, sessions, now) -> int:
    """Send unsent notifications by SMTP; without SMTP they wait in the outbox. Returns how many sent."""
    if not config.get("SMTP_HOST"):
        return 0
    sent = 0
    with sessions() as session:
        pending = session.scalars(select(Notification).where(Notification.sent_at.is_(None))
                                  .order_by(Notification.id).limit(200)).all()
        if not pending:
            return 0
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=30) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
            for note in pending:
                to = recipients(session, note)
                if to:
                    message = EmailMessage()
                    message["From"], message["To"], message["Subject"] = config["MAIL_FROM"], ", ".join(to), note.subject
                    message.set_content(f"{note.body}\n\nSign in to see the task: {config['BASE_URL']}/inbox\n")
                    smtp.send_message(message)
                note.sent_at = now()
                session.commit()
                sent += 1
    return sent
