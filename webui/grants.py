"""Auditors' access grants: read access to one child, or to every child of the council for an inspection.

The VS administrator gives and revokes them (administration pages); `access` asks them whether an
auditor may see a child. A grant to one child is written to that child's history when given and when
revoked; every grant keeps who gave it, why, until when, and who revoked it and why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from engine import history
from engine.models import AccessGrant, Child, User


def in_force(now: datetime):
    """A WHERE clause for grants neither revoked nor expired at `now`."""
    return AccessGrant.revoked_at.is_(None) & or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > now)


def granted_children(user_id: int, now: datetime):
    """A WHERE clause on Child rows: the children the user's grants in force cover."""
    return exists().where(
        AccessGrant.user_id == user_id,
        in_force(now),
        or_(AccessGrant.child_id.is_(None), AccessGrant.child_id == Child.id),
    )


def covers(session: Session, user_id: int, child_id: str, now: datetime) -> bool:
    """Whether a grant in force lets the user see the child."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    AccessGrant.user_id == user_id,
                    in_force(now),
                    or_(AccessGrant.child_id.is_(None), AccessGrant.child_id == child_id),
                )
            )
        )
    )


def grant(
    session: Session,
    auditor: User,
    child_id: str | None,
    reason: str,
    expires_at: datetime | None,
    by: str,
    now: datetime,
) -> AccessGrant:
    """Give an auditor read access to one child (or to every child when `child_id` is None)."""
    row = AccessGrant(
        user_id=auditor.id, child_id=child_id, reason=reason, granted_by=by, granted_at=now, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    if child_id is not None:
        history.append(
            session,
            child_id,
            [
                {
                    "kind": "access_granted",
                    "actor": by,
                    "data": {
                        "grant_id": row.id,
                        "auditor": auditor.email,
                        "auditor_name": auditor.name,
                        "reason": reason,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                }
            ],
            now,
        )
    return row


def revoke(session: Session, row: AccessGrant, reason: str, by: str, now: datetime) -> None:
    """End a grant before its expiry, saying why."""
    row.revoked_at, row.revoked_by, row.revoke_reason = now, by, reason
    session.flush()
    if row.child_id is not None:
        auditor = session.get(User, row.user_id)
        history.append(
            session,
            row.child_id,
            [
                {
                    "kind": "access_revoked",
                    "actor": by,
                    "data": {
                        "grant_id": row.id,
                        "auditor": auditor.email,
                        "auditor_name": auditor.name,
                        "reason": reason,
                    },
                }
            ],
            now,
        )
