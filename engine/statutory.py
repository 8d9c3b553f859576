"""The statutory events of a child's history, and what each PEP answers, as the diagrams declare them.

Called by the runtime (as steps run), engine/caselife.py (a child entering or leaving care), the
overdue sweep and deploy (which checks every declaration). Nothing here names a process: a council's
diagrams and forms say which answer is the date a meeting was held, which element signs a PEP off and
which term or deadline a PEP answers, and the engine records it in the same words for every council.

What is recorded (each event additional to the step's own; histories written before have none):
- `entered_care`, `left_care`: a case-life report (engine/caselife.py), with the date it gives;
- `meeting_held`: a form question declares `"x-event": "meeting_held"`; its date answer is the day the
  meeting was held. A user task or event may declare `statutoryEvent: meeting_held` instead (held on
  the day it completes);
- `pep_signed_off`: a user task or event declares `statutoryEvent: pep_signed_off` (usually the end
  event reached once the PEP is accepted);
- `task_overdue`, `task_reminded`, `task_escalated`: the overdue sweep (engine/overdue.py);
- `instance_started` carries `answers`: {"kind": "initial", "deadline": ...} or {"kind": "termly",
  "term": "2026-27 spring"}, from the start event's `answers` (a kind) and `answersDate` (an expression
  over the process data after the first step: the deadline, or a moment in the term answered).
"""

from __future__ import annotations

from datetime import UTC, datetime

from . import calendar
from .vocabulary import ANSWERS_DATE_PROPERTY, ANSWERS_PROPERTY, KIND_LABELS, STATUTORY_EVENT_PROPERTY, Kind  # noqa: F401

FORM_EVENT_KEY = "x-event"

# what an element may declare, and what a form question may (its answer gives the date)
DECLARED_EVENTS = {kind: KIND_LABELS[Kind(kind)] for kind in ("meeting_held", "pep_signed_off")}
FORM_EVENTS = frozenset({"meeting_held"})
DATE_FORMATS = frozenset({"date", "date-time"})
# what a PEP answers: the kind, and whether it is held to a deadline or a term
ANSWER_KINDS = {"initial": "deadline", "termly": "term", "school_move": "deadline", "leaving_care": "deadline"}


def form_events(schema: dict | None, data: dict) -> list[dict]:
    """The statutory events a form's answers record: one per answered question declaring `x-event`."""
    found = []
    for name, spec in ((schema or {}).get("properties") or {}).items():
        if isinstance(spec, dict) and spec.get(FORM_EVENT_KEY) and data.get(name) not in (None, ""):
            found.append({"kind": spec[FORM_EVENT_KEY], "field": name, "date": data[name]})
    return found


def form_event_problems(schema: dict) -> list[tuple[str, str]]:
    """What is wrong with a form's `x-event` declarations: (question, problem)."""
    problems = []
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        for inner in _nested_declarations(spec):
            problems.append(
                (
                    f"{name}/{inner}",
                    f"{FORM_EVENT_KEY} may only be declared on a question of the form "
                    "itself, not inside a group or list",
                )
            )
        kind = spec.get(FORM_EVENT_KEY)
        if kind is None:
            continue
        if kind not in FORM_EVENTS:
            problems.append(
                (
                    name,
                    f'{FORM_EVENT_KEY} "{kind}" is not an event a question can record '
                    f"(known: {', '.join(sorted(FORM_EVENTS))})",
                )
            )
        elif spec.get("format") not in DATE_FORMATS:
            problems.append(
                (
                    name,
                    f'{FORM_EVENT_KEY} "{kind}" needs a date question ("format": "date"): '
                    "its answer is the day it happened",
                )
            )
    return problems


def _nested_declarations(spec: dict):
    items = spec.get("items")
    for part in (spec, items if isinstance(items, dict) else {}):
        for inner, inner_spec in (part.get("properties") or {}).items():
            if isinstance(inner_spec, dict):
                if FORM_EVENT_KEY in inner_spec:
                    yield inner
                yield from (f"{inner}/{deeper}" for deeper in _nested_declarations(inner_spec))


def declared_event_problem(value: str | None) -> str | None:
    """What is wrong with an element's `statutoryEvent` (None when it is a known one)."""
    if value in DECLARED_EVENTS:
        return None
    return f'{STATUTORY_EVENT_PROPERTY} "{value or ""}" is not a statutory event (known: {", ".join(DECLARED_EVENTS)})'


def answers_problem(kind: str | None, date_expression: str | None) -> str | None:
    """What is wrong with a start event's `answers` / `answersDate` (None when they say what a PEP answers)."""
    if kind not in ANSWER_KINDS:
        return f'{ANSWERS_PROPERTY} "{kind or ""}" is not a kind of PEP (known: {", ".join(ANSWER_KINDS)})'
    if not (date_expression or "").strip():
        what = "the deadline it answers" if ANSWER_KINDS[kind] == "deadline" else "a moment in the term it answers"
        return f'{ANSWERS_PROPERTY} "{kind}" needs {ANSWERS_DATE_PROPERTY}: an expression giving {what}'
    return None


def answers(kind: str, moment: datetime | str) -> dict:
    """What a PEP answers, as `instance_started` records it: the term (e.g. "2026-27 spring": the term
    `moment` falls in, or the next in a holiday) or the deadline (ISO)."""
    if ANSWER_KINDS[kind] == "term":
        return {"kind": kind, "term": calendar.term_label(moment)}
    return {"kind": kind, "deadline": calendar.to_london(moment).astimezone(UTC).isoformat()}
