"""Form checks: the compiled fast check (jsonschema-rs) never passes answers that jsonschema refuses.

Every form in forms/ gets a professional's valid answers, then each field broken in the ways people
and browsers break them (left out, emptied, the wrong type, an impossible date, a trailing newline,
out of range); wherever the fast check passes an answer, jsonschema must pass it too.

A form's patterns are matched in time linear in the answer (RE2), and deployment refuses those that
could take exponential time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from benchmarks.professionals import Professional
from engine.clock import FrozenClock, using
from engine.deploy import check_form
from engine.forms import _validator, field_errors, passes_fast_check

ROOT = Path(__file__).resolve().parent.parent
ANSWERED_ON = date(2025, 10, 1)  # the day the professional answers: dates "today or in the past/future" judge by it


@pytest.fixture(autouse=True)
def on_the_day_answered():
    with using(FrozenClock(f"{ANSWERED_ON}T09:00:00+00:00")):
        yield


FORMS = sorted((ROOT / "forms").glob("*.schema.json"))
BROKEN = [
    None,
    "",
    " ",
    0,
    12,
    -1,
    101,
    1.5,
    10**20,
    True,
    False,
    [],
    {},
    [{}],
    "x" * 3000,
    "2025-02-30",
    "2025-13-01",
    "01/09/2025",
    "2025-09-01\n",
    "2025-09-01T10:00",
    "no-at-sign",
    "a@",
    "Green\n",
]


def answers_for(schema: dict, seed: int) -> dict:
    return Professional(random.Random(seed)).answers(schema, {"child": {"school": "Sample School"}}, ANSWERED_ON)


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
    assert field_errors(text, {"meeting_date": date(2025, 10, 1)}) == {"meeting_date": "Meeting date must be text"}
    assert field_errors(text, {"meeting_date": "2025-10-01"}) == {}


def form_with(spec: dict, name: str = "code") -> str:
    return json.dumps({"type": "object", "properties": {name: {"type": "string", **spec}}})


def test_a_pattern_that_backtracks_catastrophically_is_answered_at_once_with_a_field_error():
    # Python's re takes hours on these; a separate process, so that a regression fails instead of hanging
    script = f"""if True:
        import json
        from engine.forms import field_errors
        print(json.dumps([
            field_errors({form_with({"pattern": "^(a+)+$", "title": "Code", "errorMessage": "letters a only"})!r},
                         {{"code": "a" * 35 + "!"}}),
            field_errors({form_with({"pattern": "^(a+)+$", "title": "Code"})!r}, {{"code": "a" * 5000 + "!"}}),
            # look-around, which deployment now refuses: only in a form deployed before; fancy-regex gives up
            field_errors({form_with({"pattern": "^((a|aa)+)(?!x)$", "title": "Code"})!r}, {{"code": "a" * 60 + "!"}}),
        ]))
        """
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("matching a pattern backtracked: the answer was not checked within 10 seconds")
    assert done.returncode == 0, done.stderr
    refused, long_one, look_around = json.loads(done.stdout)
    assert refused == {"code": "Letters a only"}
    assert long_one["code"] == "Enter code in the right format"
    assert list(look_around) == ["code"]


def test_patterns_still_match_what_they_should():
    text = form_with({"pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "title": "Time", "errorMessage": "like 09:30"})
    assert field_errors(text, {"code": "14:30"}) == {}
    assert field_errors(text, {"code": "24:00"}) == {"code": "Like 09:30"}
    assert field_errors(text, {"code": "14:30\n"}) == {"code": "Like 09:30"}  # $ is the end, as in ECMA-262
    assert _validator(form_with({"pattern": "^[A-Z]{2}\\u00e9$"})).is_valid({"code": "AB\u00e9"})  # \\uXXXX escapes
    keyed = json.dumps({"type": "object", "patternProperties": {"^n_(a+)+$": {"type": "integer"}}})
    assert list(field_errors(keyed, {"n_" + "a" * 40: "x"})) == ["n_" + "a" * 40]
    assert _validator(keyed).is_valid({"n_" + "a" * 40 + "!": "x"})


@pytest.mark.parametrize("pattern", ["^\\s$", "^\\S+$", "^[\\s\\d]+$", "^[^\\s]+$", "^\\w+$", "^\\d+$", "^.$", "^a$"])
def test_the_fast_check_never_passes_what_re2_refuses(pattern):
    """Both read \\s as ECMA-262 does (any Unicode space), \\d and \\w as ASCII; RE2's . also takes \\r."""
    text = form_with({"pattern": pattern})
    values = [
        "a",
        "1",
        " ",
        "\u00a0",
        "\u2003",
        "\ufeff",
        "\u0085",
        "\t",
        "\n",
        "a\n",
        "\u0661",
        "\u00e9",
        "\U0001f600",
        "\r",
    ]
    passed = [value for value in values if passes_fast_check(text, {"code": value})]
    assert passed, "the fast check passes some answers"
    assert [value for value in passed if not _validator(text).is_valid({"code": value})] == []


def test_a_form_pattern_with_a_backreference_or_look_around_is_refused_at_deploy():
    schema = {
        "type": "object",
        "$defs": {"ref": {"type": "string", "pattern": "^(?=[A-Z])\\w+$"}},
        "properties": {
            "children": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "upn": {"type": "string", "pattern": "^([A-Z])\\1[0-9]+$", "title": "UPN"},
                        "ok": {"type": "string", "pattern": "^(a+)+$"},
                    },
                },
            },
            "notes": {"type": "object", "patternProperties": {"^(?!_)": {"type": "string"}}},
        },
    }
    errors = check_form("forms/children.schema.json", json.dumps(schema))
    assert {(e.file, e.element_id) for e in errors} == {
        ("forms/children.schema.json", "properties/children/items/properties/upn/pattern"),
        ("forms/children.schema.json", "properties/notes/patternProperties/^(?!_)"),
        ("forms/children.schema.json", "$defs/ref/pattern"),
    }
    upn = next(e for e in errors if "upn" in e.element_id)
    assert upn.message == (
        'pattern "^([A-Z])\\1[0-9]+$" uses a backreference or look-around, which this service '
        "does not accept: it could take exponential time"
    )
    assert check_form("forms/c.schema.json", form_with({"pattern": "^a{1,1001}$"}))[0].message.startswith(
        'pattern "^a{1,1001}$" is not one this service can check safely'
    )


@pytest.mark.parametrize("form", FORMS, ids=lambda path: path.name.removesuffix(".schema.json"))
def test_every_shipped_form_passes_the_deploy_checks(form):
    assert check_form(f"forms/{form.name}", form.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("typed", ["nan", "1e309", "-1e309", "inf"])
def test_a_number_that_is_not_finite_is_refused_field_by_field_with_enter_a_number(typed):
    """`nan` or `1e309` in a number field reads as a float that is no number: JSON cannot store it
    and a child's history cannot record it, wherever in the answers it is (a list's item, a field the
    form does not name)."""
    number = float(typed)
    form = json.dumps(
        {
            "type": "object",
            "properties": {
                "attendance_percent": {"type": "number", "minimum": 0, "maximum": 100, "title": "Attendance (%)"},
                "targets": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"hours": {"type": "number", "title": "Hours a week"}}},
                },
            },
        }
    )
    answers = {"attendance_percent": number, "targets": [{"hours": 2}, {"hours": number}], "extra": {"n": number}}
    assert field_errors(form, answers) == {
        "attendance_percent": "Attendance (%) must be a number",
        "targets.1.hours": "Item 2: hours a week must be a number",
        "extra.n": "N must be a number",
    }
    assert field_errors(form, {"attendance_percent": 95.5, "targets": [{"hours": 2}]}) == {}


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31", "2200-01-01"])
def test_a_date_no_one_means_is_refused_by_both_checks(day):
    text = json.dumps(
        {
            "type": "object",
            "properties": {"meeting_date": {"type": "string", "format": "date", "title": "Meeting date"}},
        }
    )
    assert not passes_fast_check(text, {"meeting_date": day})
    assert field_errors(text, {"meeting_date": day}) == {"meeting_date": "Meeting date must be between 1900 and 2199"}


def test_the_first_and_last_dates_an_answer_may_hold():
    text = json.dumps({"type": "object", "properties": {"day": {"type": "string", "format": "date"}}})
    assert field_errors(text, {"day": "1900-01-01"}) == field_errors(text, {"day": "2199-12-31"}) == {}


@pytest.mark.parametrize("number", [10**15, -(10**15), 1e16, 10**20, 1.5e300])
def test_a_number_longer_than_any_answer_holds_is_refused_with_its_field(number):
    text = json.dumps({"type": "object", "properties": {"days": {"type": "number", "title": "Extra days"}}})
    assert field_errors(text, {"days": number}) == {"days": "Extra days must be 15 digits or fewer"}
    assert field_errors(text, {"days": 10**15 - 1}) == field_errors(text, {"days": -0.5}) == {}


WHEN_FORM = json.dumps(
    {
        "type": "object",
        "properties": {
            "held_on": {"type": "string", "format": "date", "title": "Date the meeting was held", "x-when": "past"},
            "pep_dates": {
                "type": "array",
                "title": "Dates of the next PEPs",
                "items": {"type": "string", "format": "date", "x-when": "future"},
            },
        },
    }
)


def test_a_meeting_held_tomorrow_or_planned_for_yesterday_is_refused_field_by_field():
    assert field_errors(WHEN_FORM, {"held_on": "2025-10-02", "pep_dates": ["2025-09-30", "2025-10-01"]}) == {
        "held_on": "Date the meeting was held must be today or in the past",
        "pep_dates.0": "Dates of the next PEP 1 must be today or in the future",
    }
    assert field_errors(WHEN_FORM, {"held_on": "2025-10-01", "pep_dates": ["2025-10-01"]}) == {}


def test_when_a_date_can_be_is_judged_on_the_day_in_london():
    with using(FrozenClock("2025-09-30T23:30:00+00:00")):  # already 1 October in London
        assert field_errors(WHEN_FORM, {"held_on": "2025-10-01"}) == {}


def test_a_form_may_say_past_or_future_only_of_a_date_field():
    bad = {
        "type": "object",
        "properties": {
            "held_on": {"type": "string", "x-when": "past"},
            "due": {"type": "string", "format": "date", "x-when": "soon"},
        },
    }
    problems = {(e.element_id, e.message.split(":")[0]) for e in check_form("forms/bad.schema.json", json.dumps(bad))}
    assert problems == {("held_on", 'x-when is "past"'), ("due", 'x-when is "soon"')}
