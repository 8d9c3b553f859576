"""The engine's words, each spelled once: what a diagram's elements may declare (their extension
properties), what state a PEP is in, what each kind of history event is called in plain English, and
who acts when no person does."""

from __future__ import annotations

from enum import StrEnum

SYSTEM = "system"  # the actor of what no person did: timers, the sweep, the engine itself

# ---- what a diagram's element may declare (spiffworkflow:property) --------------------------------
FORM_PROPERTY = "formJsonSchemaFilename"
DUE_PROPERTY = "dueDate"
VALIDATE_PROPERTY = "validate"
SENT_BACK_PROPERTY = "sentBack"  # why a task that opens again was sent back (an expression; empty: it was not)
# the role that takes a user task when the child's case team names nobody for its lane's role, in place
# of the role's own fallback from config/roles.yaml (engine.roles.RoleDirectory.assignment)
FALLBACK_PROPERTY = "fallback"
NOTIFY_PROPERTY = "notify"
NOTIFY_SUBJECT_PROPERTY = "notifySubject"
NOTIFY_BODY_PROPERTY = "notifyBody"
NOTIFY_KIND_PROPERTY = "notifyKind"
INSTRUCTIONS = "instructionsForEndUser"  # a user task's instructions (Markdown, a sandboxed template)
STATUTORY_EVENT_PROPERTY = "statutoryEvent"
ANSWERS_PROPERTY = "answers"
ANSWERS_DATE_PROPERTY = "answersDate"
OVERDUE_PROPERTY = "overdue"  # "none": the diagram handles this task's lateness itself
ESCALATE_PROPERTY = "overdueEscalateTo"  # a role, or "none"
PPPLUS_EVENT_PROPERTY = "ppplusEvent"
PPPLUS_AMOUNT_PROPERTY = "ppplusAmount"
PPPLUS_DECISION_PROPERTY = "ppplusDecision"


def properties(task_spec) -> dict:
    """An element's declared properties (none for elements that declare nothing)."""
    return getattr(task_spec, "extensions", {}).get("properties", {})


class Status(StrEnum):
    """Where a PEP (an instance of a process) stands."""

    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {Status.RUNNING: "In progress", Status.COMPLETED: "Completed", Status.CANCELLED: "Withdrawn"}


class Kind(StrEnum):
    """The kinds of event a child's history holds."""

    INSTANCE_STARTED = "instance_started"
    TASK_READY = "task_ready"
    TASK_CLAIMED = "task_claimed"
    TASK_RELEASED = "task_released"
    TASK_COMPLETED = "task_completed"
    TASK_WITHDRAWN = "task_withdrawn"
    CASE_TEAM_CHANGED = "case_team_changed"
    TIMER_FIRED = "timer_fired"
    MESSAGE_RECEIVED = "message_received"
    NOTIFIED = "notified"
    INSTANCE_MIGRATED = "instance_migrated"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    INCIDENT = "incident"
    INCIDENT_RESOLVED = "incident_resolved"
    ENGINE_STEP = "engine_step"
    RECORD_VIEWED = "record_viewed"
    LINK_CREATED = "link_created"
    ACCESS_GRANTED = "access_granted"
    ACCESS_REVOKED = "access_revoked"
    CHANGE_REPORTED = "change_reported"
    CHILD_DETAILS_CHANGED = "child_details_changed"
    ENTERED_CARE = "entered_care"
    LEFT_CARE = "left_care"
    MEETING_HELD = "meeting_held"
    PEP_SIGNED_OFF = "pep_signed_off"
    TASK_OVERDUE = "task_overdue"
    TASK_REMINDED = "task_reminded"
    TASK_ESCALATED = "task_escalated"
    PPPLUS_RECORDED = "ppplus_recorded"

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


KIND_LABELS = {
    Kind.INSTANCE_STARTED: "Process started",
    Kind.TASK_READY: "Step assigned",
    Kind.TASK_CLAIMED: "Step claimed",
    Kind.TASK_RELEASED: "Step released",
    Kind.TASK_COMPLETED: "Step completed",
    Kind.TASK_WITHDRAWN: "Step withdrawn",
    Kind.CASE_TEAM_CHANGED: "Case team changed",
    Kind.TIMER_FIRED: "Timer fired",
    Kind.MESSAGE_RECEIVED: "Message received",
    Kind.NOTIFIED: "Notification",
    Kind.INSTANCE_MIGRATED: "Moved to a new version",
    Kind.INSTANCE_COMPLETED: "Process finished",
    Kind.INSTANCE_CANCELLED: "Process cancelled",
    Kind.INCIDENT: "Incident",
    Kind.INCIDENT_RESOLVED: "Incident resolved",
    Kind.ENGINE_STEP: "Process moved on",
    Kind.RECORD_VIEWED: "Record viewed",
    Kind.LINK_CREATED: "Single-use link",
    Kind.ACCESS_GRANTED: "Audit access granted",
    Kind.ACCESS_REVOKED: "Audit access revoked",
    Kind.CHANGE_REPORTED: "Change reported",
    Kind.CHILD_DETAILS_CHANGED: "Child's details changed",
    Kind.ENTERED_CARE: "Entered care",
    Kind.LEFT_CARE: "Left care",
    Kind.MEETING_HELD: "PEP meeting held",
    Kind.PEP_SIGNED_OFF: "PEP signed off",
    Kind.TASK_OVERDUE: "Step overdue",
    Kind.TASK_REMINDED: "Reminder sent",
    Kind.TASK_ESCALATED: "Escalated",
    Kind.PPPLUS_RECORDED: "Pupil Premium Plus",
}


def kind_label(kind: str) -> str:
    """The plain-English name of an event kind (the kind itself when the vocabulary does not know it)."""
    try:
        return Kind(kind).label
    except ValueError:
        return kind
