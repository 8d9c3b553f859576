"""What a form may declare for the pages that show it, and the deploy check of those declarations.

Called by engine/deploy.py (refused at deploy: file, field and line) and read by webui (prefill.py,
documents.py, tasklist.py), so that the web and the check know the same words.
"""

from __future__ import annotations

import json
import re

CASE_TEAM = "case_team"  # `x-prefill` of a list of people, `x-choices` of a text answer: the child's case team
CHILD_DETAILS = ("id", "name", "school", "date_of_birth")  # `x-prefill: "child.<detail>"`: what every task's data holds
# The parts of a PEP as the statutory guidance lays it out, in order; a form puts a field in one with
# `"x-pep-section": "<key>"` (the PEP page and its PDF are laid out by them, webui/documents.py).
PEP_PART_TITLES = {
    "voice": "The child's voice",
    "views": "Views of the carer, parents and social worker",
    "attendance": "Attendance, attainment and progress",
    "sen": "Special educational needs (SEN support, EHCP, SEMH)",
    "review": "Review of the previous targets",
    "targets": "SMART targets and Pupil Premium Plus",
    "actions": "Actions and next steps",
}
PEP_PARTS = tuple(PEP_PART_TITLES)


def form_problems(schema: dict, content: str) -> list[tuple[str, str, int | None]]:
    """(field, problem, line) of each bad `x-sections`, `x-prefill`, `x-choices` and `x-pep-section`."""
    found = _section_problems(schema, content)
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        for problem in _field_problems(spec):
            found.append((name, problem, _line(content, f'"{name}":')))
    return found


def _section_problems(schema: dict, content: str) -> list[tuple[str, str, int | None]]:
    if "x-sections" not in schema:
        return []
    declared, names = schema["x-sections"], list(schema.get("properties") or {})
    at = _line(content, '"x-sections"')
    if not isinstance(declared, list) or not declared:
        return [
            (
                "x-sections",
                'x-sections must be a list of sections: [{"title": "The meeting", "fields": '
                '["meeting_date", ...]}, ...]',
                at,
            )
        ]
    problems: list[tuple[str, str, int | None]] = []
    placed: dict[str, str] = {}  # field -> the title of its section
    for number, section in enumerate(declared, 1):
        fields = section.get("fields") if isinstance(section, dict) else None
        if (
            not isinstance(section, dict)
            or not isinstance(section.get("title"), str)
            or not section["title"].strip()
            or not isinstance(fields, list)
            or not fields
            or not all(isinstance(f, str) for f in fields)
        ):
            problems.append(("x-sections", f"section {number} must have a title and a list of the fields it asks", at))
            continue
        for name in fields:
            line = _line(content, f'"{name}"', after=at)
            if name not in names:
                problems.append(
                    (name, f'section "{section["title"]}" names the field "{name}", which the form does not have', line)
                )
            elif name in placed:
                problems.append((name, f'"{name}" is in two sections, "{placed[name]}" and "{section["title"]}"', line))
            else:
                placed[name] = section["title"]
    problems += [
        (name, f'"{name}" is in no section of x-sections: add it to the section that asks it', at)
        for name in names
        if name not in placed
    ]
    return problems


def _field_problems(spec: dict) -> list[str]:
    problems = []
    kind = spec.get("type")
    if "x-prefill" in spec:
        source = spec["x-prefill"]
        if source == CASE_TEAM:
            if kind != "array" or not isinstance(spec.get("items"), dict) or spec["items"].get("type") != "object":
                problems.append(
                    'x-prefill "case_team" fills a list of people: it goes on a field of "type": "array" '
                    "whose items are objects (name, role, contact or email)"
                )
        elif isinstance(source, str) and source.startswith("child.") and source[6:] in CHILD_DETAILS:
            if kind not in ("string", "boolean"):
                problems.append(
                    f'x-prefill "{source}" gives text: it goes on a field of "type": "string" (or "boolean": '
                    "Yes when it is known)"
                )
        else:
            problems.append(
                f'x-prefill is {json.dumps(source)}: it may be "case_team" or '
                + ", ".join(f'"child.{d}"' for d in CHILD_DETAILS)
            )
    if "x-choices" in spec:
        if spec["x-choices"] != CASE_TEAM:
            problems.append(f'x-choices is {json.dumps(spec["x-choices"])}: it may be "case_team"')
        elif kind != "string" or "enum" in spec:
            problems.append(
                'x-choices "case_team" suggests names for a text answer: it goes on a field of "type": '
                '"string" without an enum'
            )
    if "x-pep-section" in spec and spec["x-pep-section"] not in PEP_PARTS:
        problems.append(
            f"x-pep-section is {json.dumps(spec['x-pep-section'])}: it may be " + ", ".join(f'"{p}"' for p in PEP_PARTS)
        )
    return problems


def _line(content: str, text: str, after: int | None = None) -> int | None:
    """The line (from 1) where `text` first appears in the file, at or after line `after`."""
    lines = content.splitlines()
    start = (after or 1) - 1
    for number, line in enumerate(lines[start:], start + 1):
        if re.search(re.escape(text).replace(":", r"\s*:"), line):
            return number
    return None
