"""The values of answers: dates (YYYY-MM-DD, from FIRST_DATE to LAST_DATE: JSON Schema's `date` format
for answers), the values of `x-when`, and the questions asked only for some answers (`reveals`,
`drop_unasked`: `if`/`then`, `dependentRequired`).
"""

from __future__ import annotations

import re
from datetime import date

FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2199, 12, 31)  # of any date in an answer

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_iso_date(value: str) -> date | None:
    """The date an answer in the form YYYY-MM-DD names (None when it names none)."""
    if not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def is_answer_date(value) -> bool:
    """JSON Schema's `date` format for answers: a real date, YYYY-MM-DD, from FIRST_DATE to LAST_DATE
    (a value that is not a string is for the `type` keyword to judge)."""
    if not isinstance(value, str):
        return True
    day = parse_iso_date(value)
    return day is not None and FIRST_DATE <= day <= LAST_DATE


# ---- questions asked only for some answers (`if`/`then`, `dependentRequired`) ----------------------

ANY_ANSWER = object()  # a question asked whatever the answer to its controlling question, once answered


def reveals(schema: dict) -> dict[str, tuple[str, object]]:
    """{question: (the question that decides it, the answer that asks it)} of a form's conditional questions:
    those another question's answer makes required (`allOf: [{"if": {"properties": {"moving_school":
    {"const": true}}, "required": ["moving_school"]}, "then": {"required": ["transition_plan"]}}]`, or a
    top-level `if`/`then`), and those `dependentRequired` asks once a question is answered (ANY_ANSWER).
    A question asked by two different questions, or by several answers, is left out: it is always asked."""
    if not isinstance(schema, dict):
        return {}
    always = set(schema.get("required") or [])
    names = set(schema.get("properties") or {})
    found: dict[str, list[tuple[str, object]]] = {}
    clauses = [c for c in schema.get("allOf") or [] if isinstance(c, dict)] + [schema]
    for clause in clauses:
        condition, then = clause.get("if"), clause.get("then")
        if not isinstance(condition, dict) or not isinstance(then, dict):
            continue
        tests = condition.get("properties") or {}
        if len(tests) != 1 or list(tests) != list(condition.get("required") or []):
            continue
        [(controller, test)] = tests.items()
        if not isinstance(test, dict) or "const" not in test:
            continue
        for name in then.get("required") or []:
            if name in names and name not in always and name != controller:
                found.setdefault(name, []).append((controller, test["const"]))
    for controller, dependents in (schema.get("dependentRequired") or {}).items():
        for name in dependents if isinstance(dependents, list) else []:
            if name in names and name not in always and controller in names:
                found.setdefault(name, []).append((controller, ANY_ANSWER))
    return {name: asked[0] for name, asked in found.items() if len(asked) == 1}


def _same(answer, value) -> bool:
    return type(answer) is type(value) and answer == value


def drop_unasked(schema: dict, data: dict) -> dict:
    """The answers without those to conditional questions (`reveals`) that the other answers do not ask:
    a transition plan typed and then "not moving school" chosen is neither checked nor kept. Inside each
    item of a repeatable group, and inside a group of questions, the same (a target's PP+ amount when
    Pupil Premium Plus does not fund that target)."""
    asked = reveals(schema)
    data = dict(data)
    for name, spec in (schema.get("properties") or {}).items():
        value = data.get(name)
        if not isinstance(spec, dict):
            continue
        if isinstance(value, dict) and isinstance(spec.get("properties"), dict):
            data[name] = drop_unasked(spec, value)
        elif isinstance(value, list) and isinstance(spec.get("items"), dict):
            data[name] = [drop_unasked(spec["items"], item) if isinstance(item, dict) else item for item in value]
    changed = True
    while changed:  # a question that asks another may itself be unasked
        changed = False
        for name, (controller, value) in asked.items():
            if name not in data:
                continue
            answer = data.get(controller)
            wanted = answer not in (None, "", [], {}) if value is ANY_ANSWER else _same(answer, value)
            if not wanted:
                del data[name]
                changed = True
    return data


WHEN = {"past": "today or in the past", "future": "today or in the future"}  # the values of x-when
