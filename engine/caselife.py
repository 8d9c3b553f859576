"""A child's life in care, whatever their PEPs are doing: their details kept up to date by the people
allowed to, the changes that can be reported for them (coming into care, a change of school, leaving
care) and who may withdraw a running PEP.

Called by the runtime (`Engine.send_message`, `Engine.start`, `Engine.withdraw`), the web app's child
pages and the tests. Every change is written to the child's history: `child_details_changed` with
each changed field before and after, `change_reported` with the report as it was made and the PEPs
that received it. A report of coming into or leaving care also records the statutory event itself,
`entered_care` or `left_care`, with the day it happened. None belongs to an instance, so replay shows
them without re-executing anything.

The diagrams decide what a report does to a PEP (the message goes to whatever waits for it, or starts
the processes that start by it); what it does to the child's record is decided here, once:
- `child_becomes_looked_after`: the child is in care (and at the school the report names, if any);
- `child_changes_school`: the child's school is the new one;
- `child_leaves_care`: the child is no longer in care.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from . import calendar, deployments, groupkeys, history, projection, schools
from .errors import NotAllowed
from .models import CaseTeamMember, Child, Instance, ProcessDefinition, User
from .people import READ_ONLY_ROLES, find_user, holds_role_for
from .vocabulary import Status

COMING_INTO_CARE = "child_becomes_looked_after"
CHANGING_SCHOOL = "child_changes_school"
LEAVING_CARE = "child_leaves_care"
CASE_LIFE = (COMING_INTO_CARE, CHANGING_SCHOOL, LEAVING_CARE)  # offered whatever the PEPs wait for
IN_CARE_ONLY = (CHANGING_SCHOOL, LEAVING_CARE)
# the statutory event each report records, and the question of its form that gives its day
STATUTORY = {COMING_INTO_CARE: ("entered_care", "entered_care"), LEAVING_CARE: ("left_care", "left_care")}

# Who keeps a child's details: the Virtual School's administrator (who sets up records), and the
# child's own social worker or personal adviser (who hold the care record); never an auditor.
DETAIL_EDITORS = frozenset({"vs_administrator"})  # council-wide
DETAIL_EDITORS_IN_TEAM = frozenset({"social_worker", "personal_adviser"})  # only for their own children
# Who may close a running PEP early: the Virtual School's administrator (who tracks PEPs) and its Head.
WITHDRAWERS = frozenset({"vs_administrator", "vs_head"})
MAX_REASON = 1000

# Legal status of a looked-after child in England (Children Act 1989), as SSDA903 records it in short
LEGAL_STATUSES = {
    "interim_care_order": "Interim care order (section 38)",
    "care_order": "Full care order (section 31)",
    "section_20": "Accommodated by agreement (section 20)",
    "placement_order": "Placement order (adoption)",
    "emergency_protection": "Emergency protection order or police protection",
    "remand": "Remanded to local authority accommodation",
}
AREAS = {"in": "In the council's area", "out": "Out of the council's area"}
DETAIL_TITLES = {
    "name": "Full name",
    "date_of_birth": "Date of birth",
    "school": "School or setting",
    "legal_status": "Legal status",
    "in_area": "Where the child lives",
    "in_care": "In care",
    "school_urn": "School's URN",
    "upn": "Unique pupil number",
    "entered_care": "Date entered care",
}
# kept by the case system and brought by an import (engine/importer.py), not typed on the details page
IMPORTED_DETAILS = ("school_urn", "upn", "entered_care")
MAX_TEXT = 200


class CaseLifeError(ValueError):
    """A change to a child's record that is refused; the message is meant for the person who made it."""


class NotPermitted(CaseLifeError):
    pass


# ---- the child's details ----------------------------------------------------------------------


def may_edit_details(session: Session, email: str, child_id: str) -> bool:
    """Whether the person may change the child's details."""
    user = _active_user(session, email)
    if user is None or READ_ONLY_ROLES & user.role_keys:
        return False
    if DETAIL_EDITORS & user.role_keys:
        return True
    return bool(
        session.scalar(
            select(
                exists().where(
                    CaseTeamMember.child_id == child_id,
                    CaseTeamMember.user_id == user.id,
                    CaseTeamMember.role_key.in_(DETAIL_EDITORS_IN_TEAM),
                )
            )
        )
    )


def details_of(child: Child) -> dict:
    """The child's details as the edit page and the history hold them (dates as ISO text)."""
    return {
        "name": child.name,
        "date_of_birth": child.date_of_birth.isoformat() if child.date_of_birth else None,
        "school": child.school,
        "legal_status": child.legal_status,
        "in_area": child.in_area,
        "school_urn": child.school_urn,
        "upn": child.upn,
        "entered_care": child.entered_care.isoformat() if child.entered_care else None,
    }


def edit_details(session: Session, child_id: str, values: dict, actor: str, at: datetime) -> dict[str, dict]:
    """Change the child's details (those of `values` given) as `actor`; write what changed, before
    and after, to the child's history. Returns the changes ({} when nothing changed)."""
    child = session.get(Child, child_id)
    if child is None:
        raise CaseLifeError(f"no child {child_id}")
    if not may_edit_details(session, actor, child_id):
        raise NotPermitted(
            "only the VS Administrator or the child's social worker or personal adviser may change the child's details"
        )
    if "name" in values and not (values["name"] or "").strip():
        raise CaseLifeError("Enter the child's full name")
    if values.get("legal_status") not in (None, *LEGAL_STATUSES):
        raise CaseLifeError("Select the child's legal status")
    return change_details(
        session,
        child,
        {k: v for k, v in values.items() if k in DETAIL_TITLES and k not in ("in_care", *IMPORTED_DETAILS)},
        actor,
        at,
    )


def change_details(session: Session, child: Child, values: dict, actor: str, at: datetime, **why) -> dict[str, dict]:
    """Set the child's fields (dates as ISO text) and write the changes to the history, with why they
    changed. A school given by name alone is looked up in the directory (engine/schools.py); when the
    child's school changes, their designated teacher follows the school's. Callers check permission."""
    values = dict(values)
    if "school" in values and "school_urn" not in values and (values["school"] or "") != (child.school or ""):
        found = schools.find_school(session, values["school"])
        values["school_urn"] = found.urn if found is not None else None
    previous_urn = child.school_urn
    changes = _change(session, child, values, actor, at, **why)
    if "school_urn" in changes:
        schools.follow_school(session, child, actor, previous_urn)
    return changes


def _change(session: Session, child: Child, values: dict, actor: str, at: datetime, **why) -> dict[str, dict]:
    """Set the child's fields and write the changes to the history, with why they changed."""
    before = {**details_of(child), "in_care": child.in_care}
    changes = {
        field: {"before": before[field], "after": value} for field, value in values.items() if before[field] != value
    }
    for field, change in changes.items():
        value = change["after"]
        is_date = field in ("date_of_birth", "entered_care")
        setattr(child, field, date.fromisoformat(value) if is_date and value else value)
    if changes.keys() & {"school", "in_area"}:
        groupkeys.refile(session, [child.id])  # their PEPs' rows are counted under the new school or area
    if changes:
        session.flush()  # the child's row before its history's tip: one row, one lock
        history.append(
            session,
            child.id,
            [{"kind": "child_details_changed", "actor": actor, "data": {"changes": changes, **why}}],
            at,
        )
    return changes


# ---- reporting a change -------------------------------------------------------------------------


def report_refusal(session: Session, child: Child, name: str) -> str | None:
    """Why this change cannot be reported for the child now (None when it can)."""
    if name in IN_CARE_ONLY and not child.in_care:
        return f"{child.name} is not in care now: report that they have become looked after first"
    if name == COMING_INTO_CARE and child.in_care and _has_had_a_pep(session, child.id):
        return f"{child.name} is already looked after: report a change of school or that they are leaving care instead"
    return None


def running_instance(session: Session, child_id: str, process_id: str) -> Instance | None:
    """The child's running PEP of this process, if there is one."""
    return session.scalar(
        select(Instance)
        .join(ProcessDefinition, ProcessDefinition.id == Instance.definition_id)
        .where(
            Instance.child_id == child_id, Instance.status == Status.RUNNING, ProcessDefinition.process_id == process_id
        )
        .limit(1)
    )


def duplicate_refusal(session: Session, child: Child, definition: ProcessDefinition) -> str | None:
    """Why the process cannot start for the child: one of its kind is running already."""
    running = running_instance(session, child.id, definition.process_id)
    if running is None:
        return None
    started = f"{running.started_at.day} {running.started_at:%B %Y}"
    return (
        f"{definition.name} is already running for {child.name} (PEP {running.id}, started "
        f"{started}): the same kind of PEP cannot run twice at once. If it should "
        "start again, withdraw the running one first"
    )


def record_report(
    session: Session, child: Child, name: str, data: dict, actor: str, at: datetime, received_by: list[int]
) -> None:
    """Write a case-life report to the child's history, whether or not a PEP received it, and change
    the child's record as it says (the school, whether in care)."""
    if name not in CASE_LIFE:
        return
    entries: list[dict[str, Any]] = [
        {"kind": "change_reported", "actor": actor, "data": {"message": name, "data": data, "received_by": received_by}}
    ]
    if name in STATUTORY:  # the statutory event itself, with the day the report gives (else the report's)
        kind, field = STATUTORY[name]
        entries.append(
            {
                "kind": kind,
                "actor": actor,
                "data": {
                    "date": data.get(field) or calendar.to_london(at).date().isoformat(),
                    "received_by": received_by,
                },
            }
        )
    history.append(session, child.id, entries, at)
    values = {}
    if name == COMING_INTO_CARE:
        values["in_care"] = True
        # the day they entered care, which the oversight pages read (whether in care in a past term, an
        # initial PEP's deadlines); the history holds it already (`entered_care`), so not a detail changed
        child.entered_care = date.fromisoformat(entries[-1]["data"]["date"][:10])
        if (data.get("school") or "").strip():
            values["school"] = data["school"].strip()
    elif name == CHANGING_SCHOOL and (data.get("new_school") or "").strip():
        values["school"] = data["new_school"].strip()
    elif name == LEAVING_CARE:
        values["in_care"] = False
        # the day they left, which the oversight pages read (whether in care in a past term); the
        # history holds it already (`left_care`), so it is not a detail changed
        child.left_care_on = date.fromisoformat(entries[-1]["data"]["date"][:10])
    change_details(session, child, values, actor, at, message=name)
    if name == COMING_INTO_CARE:  # the PEPs the report started were projected before the day was written
        for instance_id in received_by:
            if (row := projection.recompute(session, instance_id)) is not None:
                session.execute(projection.UPDATE_PROJECTION, {"pep_instance_id": instance_id, **row})
        groupkeys.rereview(session, [child.id])


def reports_offered(session: Session, child: Child, email: str) -> dict[str, dict]:
    """The changes the person may report for the child now, each with its form (its JSON Schema):
    a case-life change whenever it can be reported (`report_refusal`), whatever the PEPs wait for; a
    message a running PEP waits for; a message that starts a process, unless one of its kind is
    running. Each only when its form (forms/message_<name>.schema.json) exists and names the person's
    role among those who may send it (`x-sent-by`)."""
    user = _active_user(session, email)
    if user is None or READ_ONLY_ROLES & user.role_keys:
        return {}
    running = session.scalars(
        select(Instance).where(Instance.child_id == child.id, Instance.status == Status.RUNNING)
    ).all()
    newest = deployments.newest_deployment(session)
    sources = {
        name: instance.definition.deployment for instance in running for name in (instance.waiting_messages or [])
    }
    started: dict[str, list[ProcessDefinition]] = {}
    for definition in newest.definitions if newest else []:
        for name in definition.start_messages or []:
            started.setdefault(name, []).append(definition)
    if newest is not None:
        for name in [*CASE_LIFE, *started]:
            sources.setdefault(name, newest)
    kinds_running = {instance.definition.process_id for instance in running}
    offered = {}
    for name, deployment in sorted(sources.items()):
        if report_refusal(session, child, name) or any(d.process_id in kinds_running for d in started.get(name, [])):
            continue
        schema = deployments.message_form(deployment, name)
        if schema is None:
            continue
        senders = schema.get("x-sent-by") or []
        if not senders or holds_role_for(session, user, child.id, senders):
            offered[name] = schema
    return offered


# ---- withdrawing a PEP ---------------------------------------------------------------------------


def may_withdraw(session: Session, email: str) -> bool:
    """Whether the person may close a running PEP early."""
    user = _active_user(session, email)
    return user is not None and not READ_ONLY_ROLES & user.role_keys and bool(WITHDRAWERS & user.role_keys)


def withdrawal_reason_problem(reason: str) -> str | None:
    if not reason.strip():
        return "Enter why the PEP is being withdrawn"
    if len(reason.strip()) > MAX_REASON:
        return f"The reason must be {MAX_REASON:,} characters or fewer"
    return None


def _has_had_a_pep(session: Session, child_id: str) -> bool:
    return (
        session.execute(select(func.count()).select_from(Instance).where(Instance.child_id == child_id)).scalar_one()
        > 0
    )


def _active_user(session: Session, email: str) -> User | None:
    user = find_user(session, email) if email and "@" in email else None
    return user if user is not None and user.active else None


def check_sender(session: Session, name: str, child_id: str, actor: str) -> None:
    """Refuse a person who holds none of the roles that the message's form says may send it (`x-sent-by`)."""
    form = deployments.message_form(deployments.newest_deployment(session), name)
    senders = form.get("x-sent-by") if form else None
    if not senders:
        return
    user = session.scalar(select(User).where(User.email == actor.strip().lower(), User.active))
    if user is None or not holds_role_for(session, user, child_id, senders):
        raise NotAllowed(f"only the child's {', '.join(senders)} may report this")
