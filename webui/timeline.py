"""A child's history in plain English: who (name and role) did what, when, in which process and version,
with the answers submitted, what changed in the PEP's data, deadlines met or missed, QA ratings and
PP+ decisions called out.

Called by the auditors' pages (webui.audit) and the audit pack (webui.audit_pack). Built from the
history rows and the replay's frames (the process data after each event), never from live state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import caselife
from engine.deployments import form_schema, message_form, newest_deployment
from engine.models import CaseTeamMember, Instance, ProcessDefinition, Role, User, UserRole
from engine.replay import ChildReplay, Frame

from .documents import Answer, answers
from .filters import ukdate

SYSTEM = "system"
# written by the engine for replay, not by a person: left out of "what was submitted"
BOOKKEEPING = {"path", "step_events", "state", "child"}


@dataclass
class Change:
    field: str
    before: str
    after: str


@dataclass
class Entry:
    """One event as a person reads it."""

    seq: int
    at: datetime
    kind: str
    actor: str
    who: str
    what: str
    instance_id: int | None
    process: str
    hash: str
    check: str = "unchecked"
    answers: list[Answer] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    callouts: list[str] = field(default_factory=list)
    deadline: str | None = None  # "met" or "missed"
    due_at: str | None = None


@dataclass
class Filters:
    instance: int | None = None
    kind: str | None = None
    person: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keep(self, entry: Entry) -> bool:
        return (
            (self.instance is None or entry.instance_id == self.instance)
            and (not self.kind or entry.kind == self.kind)
            and (not self.person or entry.actor == self.person)
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
        )


def timeline(session: Session, replay: ChildReplay) -> list[Entry]:
    """Every event of the child, oldest first, described."""
    context = _Context(session, replay.child_id)
    before: dict[int, dict] = {}
    entries = []
    for frame in replay.frames:
        entry = context.describe(frame, before.get(frame.instance_id, {}))
        if frame.instance_id is not None and frame.check != "unchecked":
            before[frame.instance_id] = frame.data
        entries.append(entry)
    return entries


def plain(value) -> str:
    """A stored value as one line of text (dates in UK style, lists joined)."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return ukdate(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


class _Context:
    """What descriptions need once per child: names, roles, processes, forms."""

    def __init__(self, session: Session, child_id: str):
        self.session = session
        self.users = {u.email: u for u in session.scalars(select(User))}
        self.role_labels = dict(session.execute(select(Role.key, Role.label)).all())
        self.team_roles: dict[int, list[str]] = {}
        for key, user_id in session.execute(
            select(CaseTeamMember.role_key, CaseTeamMember.user_id).where(CaseTeamMember.child_id == child_id)
        ):
            self.team_roles.setdefault(user_id, []).append(self.role_labels.get(key, key))
        self.council_roles: dict[int, list[str]] = {}
        for user_id, key in session.execute(select(UserRole.user_id, UserRole.role_key)):
            self.council_roles.setdefault(user_id, []).append(self.role_labels.get(key, key))
        self.instances = {i.id: i for i in session.scalars(select(Instance).where(Instance.child_id == child_id))}
        self.definitions: dict[int, ProcessDefinition] = {}
        self.forms: dict[tuple[int, str], dict] = {}

    def definition(self, definition_id: int | None) -> ProcessDefinition | None:
        if definition_id is None:
            return None
        if definition_id not in self.definitions:
            self.definitions[definition_id] = self.session.get(ProcessDefinition, definition_id)
        return self.definitions[definition_id]

    def form(self, definition: ProcessDefinition | None, name: str | None) -> dict:
        if definition is None or not name:
            return {"properties": {}}
        key = (definition.deployment_id, name)
        if key not in self.forms:
            self.forms[key] = form_schema(definition.deployment, name) or {"properties": {}}
        return self.forms[key]

    def name(self, email: str | None) -> str:
        if not email or email == SYSTEM:
            return "The system"
        user = self.users.get(email)
        return user.name if user else email

    def who(self, frame: Frame) -> str:
        event = frame.event
        if event.actor == SYSTEM:
            return "The system"
        user = self.users.get(event.actor)
        if user is None:
            return event.actor
        if event.kind in ("task_completed", "task_claimed", "task_released") and event.data.get("role"):
            roles = [self.role_labels.get(event.data["role"], event.data.get("lane", ""))]
        else:
            roles = self.team_roles.get(user.id) or self.council_roles.get(user.id) or []
        return f"{user.name} ({', '.join(roles)})" if roles else user.name

    def process(self, frame: Frame) -> tuple[str, ProcessDefinition | None]:
        instance = self.instances.get(frame.instance_id)
        definition = self.definition(frame.definition_id or (instance.definition_id if instance else None))
        if definition is None:
            return "", None
        return f"{definition.name}, version {definition.deployment.version}", definition

    def describe(self, frame: Frame, before: dict) -> Entry:
        event, data = frame.event, frame.event.data
        process, definition = self.process(frame)
        entry = Entry(
            seq=event.seq,
            at=event.at,
            kind=event.kind,
            actor=event.actor,
            who=self.who(frame),
            what=self.what(event.kind, data),
            instance_id=event.instance_id,
            process=process,
            hash=event.hash,
            check=frame.check,
        )
        if event.kind in ("task_completed", "message_received"):
            submitted = {k: v for k, v in (data.get("data") or {}).items() if k not in BOOKKEEPING}
            schema = self.form(
                definition,
                data.get("form") or (f"message_{data['message']}.schema.json" if data.get("message") else None),
            )
            entry.answers = answers(schema, submitted, {})
            entry.answers += [
                Answer(k.replace("_", " ").capitalize(), plain(v))
                for k, v in submitted.items()
                if k not in schema.get("properties", {})
            ]
            entry.callouts = callouts(submitted, schema)
        if event.kind == "change_reported":
            submitted = data.get("data") or {}
            schema = self.message_form(data.get("message"))
            entry.answers = answers(schema, submitted, {})
            entry.answers += [
                Answer(k.replace("_", " ").capitalize(), plain(v))
                for k, v in submitted.items()
                if k not in schema.get("properties", {})
            ]
        elif event.kind == "child_details_changed":
            entry.changes = [
                Change(
                    caselife.DETAIL_TITLES.get(name, name),
                    _detail(name, change.get("before")),
                    _detail(name, change.get("after")),
                )
                for name, change in (data.get("changes") or {}).items()
            ]
        if frame.check != "unchecked" and frame.instance_id is not None:
            entry.changes = _changes(before, frame.data, self.form(definition, data.get("form")))
        if event.kind == "task_completed" and data.get("due_at"):
            entry.deadline, entry.due_at = ("missed" if data.get("late") else "met"), data["due_at"]
        elif event.kind == "task_ready" and data.get("due_at"):
            entry.due_at = data["due_at"]
        return entry

    def message_form(self, name: str | None) -> dict:
        """The form of a reported change, as the newest version has it."""
        key = (0, f"message_{name}")
        if key not in self.forms:
            self.forms[key] = message_form(newest_deployment(self.session), name) or {"properties": {}}
        return self.forms[key]

    def what(self, kind: str, data: dict) -> str:
        task = data.get("name") or data.get("task") or "a step"
        if kind == "change_reported":
            title = self.message_form(data.get("message")).get("title") or data.get("message")
            received = data.get("received_by") or []
            return f"Reported “{title}”: " + (
                f"passed to PEP {', '.join(map(str, received))}"
                if received
                else "no PEP was waiting for it, so only the child's record changed"
            )
        if kind == "child_details_changed":
            fields = ", ".join(caselife.DETAIL_TITLES.get(name, name) for name in data.get("changes") or {})
            because = data.get("message")
            return f"Changed the child's details ({fields})" + (
                f", as “{self.message_form(because).get('title') or because}” says" if because else ""
            )
        if kind == "instance_cancelled" and data.get("withdrawn"):
            return f"PEP withdrawn: {data.get('reason', '')}"
        if kind == "instance_started":
            text = f"Started {data.get('process_name', 'a process')} (version {data.get('deployment_version', '?')})"
            if data.get("message"):
                text += f", on the message “{data['message']}”"
            return text + (
                f", following PEP {data['previous_instance_id']}" if data.get("previous_instance_id") else ""
            )
        if kind == "task_ready":
            back = f", sent back: {data['sent_back']}" if data.get("sent_back") else ""
            if data.get("assignee_id"):
                holder = next((u.name for u in self.users.values() if u.id == data["assignee_id"]), "someone")
                return f"“{task}” assigned to {holder} ({data.get('lane', '')}){back}"
            if data.get("needs_person"):
                return (
                    f"“{task}” needs a person: nobody is the child's {data.get('lane', '')}, and the Virtual School "
                    f"administrator was told{back}"
                )
            if data.get("fallback_from"):
                role = self.role_labels.get(data.get("role"), data.get("role", ""))
                return f"“{task}” waiting in the {role} pool, as the child has no {data.get('lane', '')}{back}"
            where = "pool to be claimed" if data.get("pooled") else "case team, but nobody holds the role"
            return f"“{task}” waiting in the {data.get('lane', '')} {where}{back}"
        if kind == "case_team_changed":
            role = self.role_labels.get(data.get("role"), data.get("role", ""))
            if not data.get("from"):
                return f"{role} set to {self.name(data.get('to'))}"
            return f"Reassigned {role} from {self.name(data.get('from'))} to {self.name(data.get('to'))}"
        simple = {
            "task_completed": f"Completed “{task}”"
            + (
                f", submitted through a single-use link issued by {self.name(data['link_issued_by'])}"
                if data.get("link_issued_by")
                else ""
            ),
            "task_withdrawn": f"“{task}” withdrawn: the process moved on without it",
            "task_claimed": f"Claimed “{task}” from the pool",
            "task_released": f"Gave “{task}” back to the pool",
            "timer_fired": f"Timer fired: {data.get('name') or data.get('timer')}"
            + (f" (due {ukdate(data['due'], time=True)})" if data.get("due") else ""),
            "message_received": f"Received the message “{data.get('message')}”",
            "notified": f"Notified {', '.join(self.role_labels.get(r, r) for r in data.get('roles', [])) or 'nobody'}:"
            f" {data.get('subject', '')}",
            "instance_completed": "Process finished",
            "instance_cancelled": "Process cancelled" + (f": {data['reason']}" if data.get("reason") else ""),
            "instance_migrated": f"Moved from version {data.get('from_version')} to version {data.get('to_version')}",
            "incident": f"Incident ({data.get('source', '')}): {data.get('message', '')}",
            "incident_resolved": f"Incident {data.get('incident_id', '')} resolved"
            + (f": {data['note']}" if data.get("note") else ""),
            "engine_step": "The process moved on",
            "record_viewed": f"Viewed the record ({str(data.get('page', '')).replace('_', ' ')})",
            "link_created": f"Created a single-use link for “{task}”",
            "access_granted": f"Gave {data.get('auditor_name')} audit access: {data.get('reason', '')}"
            + (f" (until {ukdate(data['expires_at'])})" if data.get("expires_at") else ""),
            "access_revoked": f"Revoked {data.get('auditor_name')}'s audit access: {data.get('reason', '')}",
        }
        return simple.get(kind, kind.replace("_", " ").capitalize())


def callouts(submitted: dict, schema: dict) -> list[str]:
    """The answers the form marks for auditors (`"x-audit": "QA rating"`), each as "label: value"."""
    found = []
    for name, value in submitted.items():
        spec = schema.get("properties", {}).get(name, {})
        if spec.get("x-audit"):
            labels = spec.get("x-labels") or {}
            found.append(f"{spec['x-audit']}: {labels.get(str(value), plain(value))}")
    return found


def _changes(before: dict, after: dict, schema: dict) -> list[Change]:
    """What the event changed in the instance's data, field by field (by the form's titles when known)."""
    titles = {k: v.get("title") for k, v in schema.get("properties", {}).items() if v.get("title")}
    changes = []
    for key in sorted(set(before) | set(after), key=lambda k: (k not in after, k)):
        if key in BOOKKEEPING or _same(before.get(key), after.get(key)):
            continue
        label = titles.get(key) or key.replace("_", " ").capitalize()
        changes.append(
            Change(
                label,
                plain(before.get(key)) if key in before else "(not set)",
                plain(after.get(key)) if key in after else "(removed)",
            )
        )
    return changes


def _detail(name: str, value) -> str:
    """One of the child's details as a person reads it."""
    if name == "legal_status" and value in caselife.LEGAL_STATUSES:
        return caselife.LEGAL_STATUSES[value]
    if name == "in_area" and isinstance(value, bool):
        return caselife.AREAS["in" if value else "out"]
    return "(not recorded)" if value in (None, "") else plain(value)


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
