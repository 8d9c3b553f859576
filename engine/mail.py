"""Notifications by e-mail: every unsent notification to its person, or to everyone holding its role.

Called by the schedulers (`pep scheduler`, `pep-web run`) every minute. Without an SMTP host nothing is
sent and notifications wait on the web app's Notifications page, so none is lost either way.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage

from sqlalchemy import select

from .models import CaseTeamMember, Notification, Role, User, UserRole

log = logging.getLogger(__name__)


def one_line(text: str, limit: int = 300) -> str:
    """Text fit for an e-mail header: control characters and line breaks folded to single spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text or "").split())[:limit]


def settings_from_env() -> dict:
    """The mail settings from PEP_SMTP_* , PEP_MAIL_FROM and PEP_BASE_URL (the keys the web app's config uses)."""
    return dict(
        SMTP_HOST=os.environ.get("PEP_SMTP_HOST"),
        SMTP_PORT=int(os.environ.get("PEP_SMTP_PORT", "25")),
        SMTP_USER=os.environ.get("PEP_SMTP_USER"),
        SMTP_PASSWORD=os.environ.get("PEP_SMTP_PASSWORD"),
        SMTP_STARTTLS=os.environ.get("PEP_SMTP_STARTTLS", "0") == "1",
        MAIL_FROM=os.environ.get("PEP_MAIL_FROM", "pep-noreply@council.test"),
        BASE_URL=os.environ.get("PEP_BASE_URL", "http://localhost:5000"),
    )


def recipients(session, note: Notification) -> list[str]:
    """E-mail addresses a notification goes to: its person, or everyone holding its role; only people
    who may see its child now (in the child's case team, or holding a role that sees every child)."""
    sees_all = select(UserRole.user_id).join(Role, Role.key == UserRole.role_key).where(Role.sees_all_children)
    in_team = select(CaseTeamMember.user_id).where(CaseTeamMember.child_id == note.child_id)
    query = select(User.email).where(User.active)
    if note.child_id is not None:
        query = query.where(User.id.in_(sees_all) | User.id.in_(in_team))
    if note.user_id is not None:
        return list(session.scalars(query.where(User.id == note.user_id)))
    return list(
        session.scalars(query.join(UserRole, UserRole.user_id == User.id).where(UserRole.role_key == note.role_key))
    )


def deliver_pending(settings: Mapping, sessions, now) -> int:
    """Send unsent notifications by SMTP, each marked sent as it goes (never twice); return how many."""
    if not settings.get("SMTP_HOST"):
        return 0
    sent = 0
    with sessions() as session:
        pending = session.scalars(
            select(Notification).where(Notification.sent_at.is_(None)).order_by(Notification.id).limit(200)
        ).all()
        if not pending:
            return 0
        with smtplib.SMTP(settings["SMTP_HOST"], settings["SMTP_PORT"], timeout=30) as smtp:
            if settings.get("SMTP_STARTTLS"):
                smtp.starttls()
            if settings.get("SMTP_USER"):
                smtp.login(settings["SMTP_USER"], settings["SMTP_PASSWORD"])
            for note in pending:
                to = recipients(session, note)
                if to:
                    try:
                        smtp.send_message(_message(settings, to, note))
                    except (ValueError, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
                        # this one message cannot go (a refused address, a message the server will not
                        # take): it stays on the Notifications page, and the others still go
                        log.warning("notification %s was not e-mailed: %s", note.id, exc)
                note.sent_at = now()
                session.commit()
                sent += 1
    return sent


def _message(settings: Mapping, to: list[str], note: Notification) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings["MAIL_FROM"], ", ".join(to), one_line(note.subject)
    message.set_content(f"{note.body}\n\nSign in to see the task: {settings['BASE_URL']}/inbox\n")
    return message
