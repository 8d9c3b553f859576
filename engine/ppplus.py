"""The Pupil Premium Plus ledger: what was requested, decided and released for each child, as the
diagrams and forms declare it, recorded line by line. Called by the runtime (as steps run), deploy (which
checks every declaration) and `pep ppplus-backfill`; the ledger's views (figures, allocations, a year's
ledger, for webui/ledger.py) are in `ppplusledger`.

Nothing here names a council's question or element. A form question declares what its answer is:
- `"x-ppplus": "requested"`: an amount asked for (in a list of targets, one line per target);
- `"x-ppplus": "category"` / `"purpose"`: the EEF or target category / what the amounts beside it fund;
- `"x-ppplus": "decision"` with `"x-ppplus-values"`: the decision, each answer mapped to approved, part
  or refused; `"x-ppplus": "approved"`: the amount approved (else an approval is what is asked for);
- `"x-ppplus": "released"`: an amount released.
A diagram element (a script task run once the sign-off is given, or a user task) declares
`ppplusEvent` (requested, decided or released) with `ppplusAmount`, and for a decision
`ppplusDecision`: expressions over the process data, evaluated as the element completes.

Each line is a `ppplus_recorded` event of the child's history, and a `ppplus_entry` row written in the
same transaction. A PEP's figures: what is asked for and decided is the latest answer of each question
or element (an amended request replaces the one before); what is released adds up.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import calendar
from .models import Child, DeploymentFile, Event, Instance, PpplusEntry, ProcessDefinition
from .vocabulary import PPPLUS_AMOUNT_PROPERTY, PPPLUS_DECISION_PROPERTY, PPPLUS_EVENT_PROPERTY

FORM_KEY = "x-ppplus"
VALUES_KEY = "x-ppplus-values"
EVENT_PROPERTY, AMOUNT_PROPERTY, DECISION_PROPERTY = (
    PPPLUS_EVENT_PROPERTY,
    PPPLUS_AMOUNT_PROPERTY,
    PPPLUS_DECISION_PROPERTY,
)
EVENT_KIND = "ppplus_recorded"

ENTRIES = ("requested", "decided", "released")
DECISIONS = ("approved", "part", "refused")
AMOUNT_ROLES = {"requested": "requested", "approved": "decided", "released": "released"}
FORM_ROLES = frozenset({*AMOUNT_ROLES, "decision", "category", "purpose"})


# ---- declarations: what a form's answers and a diagram's elements record ----------------------------


def _scopes(schema: dict, data: dict):
    """(path, properties, answers) of the form itself and of each item of each list of groups."""
    properties = schema.get("properties") or {}
    yield "", properties, data
    for name, spec in properties.items():
        items = spec.get("items") if isinstance(spec, dict) else None
        if isinstance(items, dict) and items.get("properties") and isinstance(data.get(name), list):
            for item in data[name]:
                if isinstance(item, dict):
                    yield f"{name}/", items["properties"], item


def _declaring_groups(schema: dict):
    """(path, properties) of the form itself and of the items of each of its lists."""
    properties = schema.get("properties") or {}
    yield "", properties
    for name, spec in properties.items():
        if isinstance(spec, dict) and isinstance(spec.get("items"), dict):
            yield f"{name}/", spec["items"].get("properties") or {}


def declares(schema: dict | None) -> bool:
    """Whether any question of the form declares a PP+ answer."""
    return any(
        isinstance(spec, dict) and FORM_KEY in spec
        for _path, properties in _declaring_groups(schema or {})
        for spec in properties.values()
    )


def decides(schema: dict | None) -> bool:
    """Whether the form asks for a PP+ decision."""
    return any(
        isinstance(spec, dict) and spec.get(FORM_KEY) == "decision"
        for _path, properties in _declaring_groups(schema or {})
        for spec in properties.values()
    )


def form_lines(schema: dict | None, data: dict, pending: int = 0) -> list[dict]:
    """The ledger lines a form's answers record, in the form's order; `pending` is what the PEP asks for
    so far (pence), which an approval without an amount approves."""
    lines = []
    for path, properties, answers in _scopes(schema or {}, data):
        declared = {
            spec[FORM_KEY]: name for name, spec in properties.items() if isinstance(spec, dict) and FORM_KEY in spec
        }
        about = {
            "category": _text(answers.get(declared.get("category"))),
            "purpose": _text(answers.get(declared.get("purpose"))),
        }
        for role in ("requested", "released"):
            name = declared.get(role)
            amount = as_pence(answers.get(name)) if name else 0
            if amount > 0:
                lines.append({"entry": role, "amount": amount, "source": path + name, **about})
        name = declared.get("decision")
        if name and answers.get(name) not in (None, ""):
            values = properties[name].get(VALUES_KEY) or {}
            decision = values.get(_key(answers[name]))
            approved_name = declared.get("approved")
            given = (
                as_pence(answers.get(approved_name))
                if approved_name and answers.get(approved_name) is not None
                else None
            )
            if decision == "refused":
                amount = 0
            elif decision == "part":
                amount = min(given or 0, pending) if pending else (given or 0)
            else:
                amount = given if given is not None else pending
            lines.append({"entry": "decided", "decision": decision, "amount": amount, "source": path + name, **about})
    return lines


def element_line(properties: dict, evaluate) -> dict | None:
    """The ledger line an element declares (`ppplusEvent`), its expressions evaluated by `evaluate`."""
    kind = properties.get(EVENT_PROPERTY)
    if not kind:
        return None
    line = {"entry": kind, "amount": as_pence(evaluate(properties[AMOUNT_PROPERTY]))}
    if kind == "decided":
        line["decision"] = str(evaluate(properties[DECISION_PROPERTY]))
        if line["decision"] == "refused":
            line["amount"] = 0
    if kind != "decided" and line["amount"] <= 0:
        return None  # nothing asked for or released
    return line


def form_problems(schema: dict) -> list[tuple[str, str]]:
    """What is wrong with a form's `x-ppplus` declarations: (question, problem)."""
    problems = []
    for path, properties in _declaring_groups(schema):
        seen: dict[str, str] = {}
        for name, spec in properties.items():
            if not isinstance(spec, dict) or FORM_KEY not in spec:
                continue
            role, where = spec[FORM_KEY], path + name
            if role not in FORM_ROLES:
                problems.append(
                    (where, f'{FORM_KEY} "{role}" is not a PP+ answer (known: {", ".join(sorted(FORM_ROLES))})')
                )
                continue
            if role in seen:
                problems.append((where, f'{FORM_KEY} "{role}" is declared twice in one group (also on {seen[role]})'))
            seen[role] = where
            if role in AMOUNT_ROLES and spec.get("type") not in ("number", "integer"):
                problems.append((where, f'{FORM_KEY} "{role}" needs a number question (an amount in pounds)'))
            if role == "decision":
                problems += [(where, p) for p in _decision_problems(spec)]
        if "approved" in seen and "decision" not in seen:
            problems.append((seen["approved"], f'{FORM_KEY} "approved" needs a "decision" question beside it'))
    return problems


def _decision_problems(spec: dict) -> list[str]:
    values = spec.get(VALUES_KEY)
    answers = ["true", "false"] if spec.get("type") == "boolean" else [_key(v) for v in spec.get("enum") or []]
    if not answers:
        return [f'{FORM_KEY} "decision" needs a question with a fixed list of answers (an enum) or yes/no']
    if not isinstance(values, dict):
        return [f'{FORM_KEY} "decision" needs {VALUES_KEY}: each answer mapped to {", ".join(DECISIONS)}']
    problems = [f'{VALUES_KEY} does not say what the answer "{a}" decides' for a in answers if a not in values]
    problems += [
        f'{VALUES_KEY} maps "{a}" to "{v}", which is not a decision (known: {", ".join(DECISIONS)})'
        for a, v in values.items()
        if v not in DECISIONS
    ]
    return problems


def element_problem(kind: str | None, amount: str | None, decision: str | None) -> str | None:
    """What is wrong with an element's `ppplusEvent` and its expressions (None when nothing)."""
    if kind not in ENTRIES:
        return f'{EVENT_PROPERTY} "{kind or ""}" is not a PP+ entry (known: {", ".join(ENTRIES)})'
    if not (amount or "").strip():
        return f'{EVENT_PROPERTY} "{kind}" needs {AMOUNT_PROPERTY}: an expression giving the amount in pounds'
    if kind == "decided" and not (decision or "").strip():
        return f'{EVENT_PROPERTY} "decided" needs {DECISION_PROPERTY}: an expression giving {", ".join(DECISIONS)}'
    return None


def unguarded_releases(
    nodes: dict[str, list[str]], starts: list[str], releases: list[str], guards: set[str]
) -> list[str]:
    """The releasing elements a path from a start reaches without passing a decision or sign-off
    (`guards`): `nodes` maps each element to those it leads to."""
    seen, todo = set(starts), list(starts)
    while todo:
        node = todo.pop()
        if node in guards:
            continue
        for after in nodes.get(node, []):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return [element for element in releases if element in seen]


def _key(value) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _text(value) -> str | None:
    return None if value in (None, "") else " ".join(str(value).split())[:2000]


def as_pence(value) -> int:
    try:
        return max(0, round(float(value or 0) * 100))
    except (TypeError, ValueError):
        return 0


# ---- a PEP's figures, years and terms --------------------------------------------------------------


def financial_year(when) -> str:
    """The financial year (April to March) of a moment, e.g. "2025-26"."""
    day = calendar.to_london(when).date()
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def pending(lines: list[dict]) -> int:
    """What a PEP asks for now (pence): the latest request of each question or element."""
    return sum(line["amount"] for line in latest(lines, "requested"))


def latest(lines: list[dict], entry: str) -> list[dict]:
    """The lines of one kind that stand: of each source, those of the latest step that answered it."""
    last: dict[str, int] = {}
    for line in lines:
        if line["entry"] == entry:
            last[line["source"]] = max(last.get(line["source"], -1), line["step_seq"])
    return [line for line in lines if line["entry"] == entry and line["step_seq"] == last[line["source"]]]


# ---- rows, reconciliation and backfill -------------------------------------------------------------


def rows_of_step(
    entries: list[dict], first_seq: int, child_id: str, instance_id: int | None, at: datetime, school: str | None
) -> list[dict]:
    """The `ppplus_entry` rows of a step's history entries (the first of which gets `first_seq`)."""
    rows = []
    for offset, entry in enumerate(entries):
        if entry["kind"] != EVENT_KIND:
            continue
        data = entry["data"]
        rows.append(
            dict(
                child_id=child_id,
                seq=first_seq + offset,
                step_seq=first_seq,
                instance_id=instance_id,
                task_id=entry.get("task_id"),
                at=at,
                financial_year=financial_year(at),
                term=calendar.term_label(at),
                school=school,
                entry=data["entry"],
                decision=data.get("decision"),
                amount_pence=data["amount"],
                source=data["source"],
                category=data.get("category"),
                purpose=data.get("purpose"),
                actor=entry.get("actor") or "",
            )
        )
    return rows


COMPARED = ("child_id", "instance_id", "step_seq", "entry", "decision", "amount_pence", "source", "category", "purpose")


def recompute(session: Session, child_ids: list[str] | None = None) -> list[dict]:
    """The ledger worked out afresh from the histories: the form-declared lines from each completed
    task's answers (read through its form as deployed), the element lines from their events."""
    forms = FormReader(session)
    lines = []
    query = select(Event).order_by(Event.child_id, Event.seq)
    if child_ids is not None:
        query = query.where(Event.child_id.in_(child_ids))
    by_instance: dict = defaultdict(list)
    step_seq = 0
    recorded: dict[tuple, list[Event]] = defaultdict(list)  # (child, step) → its ppplus events
    events = list(session.scalars(query))
    for event in events:
        if "step_events" in (event.data or {}):
            step_seq = event.seq
        if event.kind == EVENT_KIND:
            recorded[(event.child_id, step_seq)].append(event)
    step_seq = 0
    for event in events:
        if "step_events" in (event.data or {}):
            step_seq = event.seq
        key = (event.child_id, event.instance_id)
        found = []
        if event.kind == "task_completed" and event.data.get("form"):
            schema = forms.schema(event.instance_id, event.data["form"])
            mine = [dict(line, step_seq=step_seq) for line in by_instance[key]]
            found = form_lines(schema, event.data.get("data") or {}, pending(mine))
            logged = [e for e in recorded[(event.child_id, step_seq)] if "element" not in e.data]
            for n, line in enumerate(found):
                line["seq"] = logged[n].seq if n < len(logged) else event.seq
        elif event.kind == EVENT_KIND and "element" in event.data:
            found = [{k: event.data.get(k) for k in ("entry", "decision", "amount", "source", "category", "purpose")}]
            found[0]["seq"] = event.seq
        for line in found:
            line.update(
                child_id=event.child_id,
                instance_id=event.instance_id,
                step_seq=step_seq,
                at=event.at,
                task_id=event.task_id,
                actor=event.actor,
            )
            line.setdefault("decision", None)
            line.setdefault("category", None)
            line.setdefault("purpose", None)
            by_instance[key].append(line)
            lines.append(line)
    return lines


def differences(session: Session) -> list[str]:
    """Where the ledger's rows and the histories disagree (nothing, when they reconcile)."""
    computed = sorted(tuple(_compared(line, "amount") for line in recompute(session)))
    stored = sorted(tuple(_row(row)) for row in session.scalars(select(PpplusEntry)))
    if computed == stored:
        return []
    return [f"history only: {line}" for line in sorted(set(computed) - set(stored))] + [
        f"ledger only: {row}" for row in sorted(set(stored) - set(computed))
    ]


def _compared(line: dict, amount_key: str) -> tuple:
    return tuple(line[amount_key] if name == "amount_pence" else line[name] for name in COMPARED)


def _row(row: PpplusEntry) -> tuple:
    return tuple(getattr(row, name) for name in COMPARED)


def backfill(session: Session) -> int:
    """Rebuild every row of the ledger from the histories (flushed, not committed); return how many."""
    session.execute(delete(PpplusEntry))
    schools = dict(session.execute(select(Child.id, Child.school)).all())
    count = 0
    for line in recompute(session):
        session.add(
            PpplusEntry(
                child_id=line["child_id"],
                seq=line["seq"],
                step_seq=line["step_seq"],
                instance_id=line["instance_id"],
                task_id=line["task_id"],
                at=line["at"],
                financial_year=financial_year(line["at"]),
                term=calendar.term_label(line["at"]),
                school=schools.get(line["child_id"]),
                entry=line["entry"],
                decision=line["decision"],
                amount_pence=line["amount"],
                source=line["source"],
                category=line["category"],
                purpose=line["purpose"],
                actor=line["actor"],
            )
        )
        count += 1
    session.flush()
    return count


class FormReader:
    """The forms of each instance's deployment, read once each."""

    def __init__(self, session: Session):
        self.session = session
        self._deployment: dict[int, int] = {}
        self._schemas: dict[tuple[int, str], dict | None] = {}

    def schema(self, instance_id: int | None, form: str) -> dict | None:
        if instance_id is None:
            return None
        if instance_id not in self._deployment:
            self._deployment[instance_id] = self.session.scalar(  # type: ignore[assignment] # an instance has one
                select(ProcessDefinition.deployment_id)
                .join(Instance, Instance.definition_id == ProcessDefinition.id)
                .where(Instance.id == instance_id)
            )
        key = (self._deployment[instance_id], form)
        if key not in self._schemas:
            content = self.session.scalar(
                select(DeploymentFile.content).where(
                    DeploymentFile.deployment_id == key[0], DeploymentFile.path == f"forms/{form}"
                )
            )
            self._schemas[key] = json.loads(content) if content else None
        return self._schemas[key]
