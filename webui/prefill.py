"""Answers the app holds already: a form's fields filled in from the child's record and case team.

Called by the task page when it first opens (no draft yet). Declared in the forms, never guessed:
`"x-prefill": "child.school"` fills a field from the task's data (a boolean field is Yes when that
value is known, and left for the person to answer when it is not); `"x-prefill": "case_team"` fills a
list of people (invitations) with the child's case team; `"x-choices": "case_team"` offers the case
team as suggestions for a text answer that may still name someone else.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.formdecl import CASE_TEAM
from engine.models import CaseTeamMember, Role, User

OTHER = "Other professional"


def case_team(session: Session, child_id: str) -> list[dict]:
    """The child's case team: each member's name, role label and e-mail address, by role."""
    rows = session.execute(
        select(User.name, Role.label, User.email)
        .join(CaseTeamMember, CaseTeamMember.user_id == User.id)
        .join(Role, Role.key == CaseTeamMember.role_key)
        .where(CaseTeamMember.child_id == child_id)
        .order_by(Role.label)
    ).all()
    return [{"name": name, "role": role, "email": email} for name, role, email in rows]


def prefill(schema: dict, data: dict, team: list[dict], me: str) -> dict:
    """`data` with the fields the form declares (`x-prefill`) filled in where they have no answer yet."""
    values = dict(data)
    for name, spec in schema.get("properties", {}).items():
        source = spec.get("x-prefill") if isinstance(spec, dict) else None
        if not source or values.get(name) not in (None, "", []):
            continue
        if source == CASE_TEAM and spec.get("type") == "array" and isinstance(spec.get("items"), dict):
            items = _team_items(spec["items"], [m for m in team if m["email"] != me])
            if items:
                values[name] = items
            continue
        found = _lookup(data, source)
        if spec.get("type") == "boolean":
            if found not in (None, "", False):
                values[name] = True
        elif found not in (None, ""):
            values[name] = found
    return values


def suggestions(source: str | None, team: list[dict]) -> list[str]:
    """What a text field offers to choose (`x-choices`): each case team member as 'Name (Role)'."""
    return [f"{m['name']} ({m['role']})" for m in team] if source == CASE_TEAM else []


def _lookup(data: dict, path: str):
    value = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _team_items(item_spec: dict, team: list[dict]) -> list[dict]:
    """One item of a list of people per case team member, in the item's own fields (name, role, contact or
    email); a role the list does not name is 'Other professional' where it has one, else left out."""
    fields = item_spec.get("properties", {})
    roles = fields.get("role", {}).get("enum")
    items = []
    for member in team:
        role = member["role"]
        if roles is not None and role not in roles:
            if OTHER not in roles:
                continue
            role = OTHER
        item = {"name": member["name"]} if "name" in fields else {}
        if "role" in fields:
            item["role"] = role
        for key in ("contact", "email"):
            if key in fields:
                item[key] = member["email"]
        items.append(item)
    return items
