"""Form checks: the compiled fast check (jsonschema-rs) never passes answers that jsonschema refuses.

Every form in forms/ gets a professional's valid answers, then each field broken in the ways people
and browsers break them (left out, emptied, the wrong type, an impossible date, a trailing newline,
out of range); wherever the fast check passes an answer, jsonschema must pass it too.
"""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pytest

from benchmarks.professionals import Professional
from engine.forms import _validator, field_errors, passes_fast_check

FORMS = sorted((Path(__file__).resolve().parent.parent / "forms").glob("*.schema.json"))
BROKEN = [None, "", " ", 0, 12, -1, 101, 1.5, 10**20, True, False, [], {}, [{}], "x" * 3000, "2025-02-30",
          "2025-13-01", "01/09/2025", "2025-09-01\n", "2025-09-01T10:00", "no-at-sign", "a@", "Green\n"]


def answers_for(schema: dict, seed: int) -> dict:
    return Professional(random.Random(seed)).answers(schema, {"child": {"school": "Sample School"}}, date(2025, 10, 1))


def broken_versions(answers: dict):
    """The answers with one field (or one field of a list's first item) removed or replaced."""
    for name, value in answers.items():
        yield {k: v for k, v in answers.items() if k != name}
        for wrong in BROKEN:
            yield {**answers, name: wrong}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for field in value[0]:
                for wrong in BROKEN:
                    yield {**answers, name: [{**value[0], field: wrong}, *value[1:]]}
    yield {**answers, "unexpected_field": "kept"}


@pytest.mark.parametrize("form", FORMS, ids=lambda path: path.name.removesuffix(".schema.json"))
def test_the_fast_check_never_passes_what_jsonschema_refuses(form):
    text = form.read_text(encoding="utf-8")
    answers = answers_for(json.loads(text), seed=len(text))
    assert passes_fast_check(text, answers), "a professional's valid answers take the fast path"
    assert field_errors(text, answers) == {}
    passed = 0
    for candidate in broken_versions(answers):
        if passes_fast_check(text, candidate):
            passed += 1
            assert _validator(text).is_valid(candidate), f"the fast check passed what jsonschema refuses: {candidate}"
    assert passed < sum(1 for _ in broken_versions(answers)), "the fast check refuses broken answers"


def test_answers_the_fast_check_cannot_read_are_decided_by_jsonschema():
    text = json.dumps({"type": "object", "properties": {"meeting_date": {"type": "string", "format": "date"}}})
    assert not passes_fast_check(text, {"meeting_date": date(2025, 10, 1)})  # a date object, not JSON
    assert field_errors(text, {"meeting_date": date(2025, 10, 1)}) == {"meeting_date": "Meeting date: must be a string"}
    assert field_errors(text, {"meeting_date": "2025-10-01"}) == {}
