"""Validate submitted form data against a user task's JSON Schema, field by field.

Called by the runtime before a task runs; the web layer shows the errors next to each field.

Most submissions are valid, so they are first checked by jsonschema-rs's compiled validator, a
hundred times faster than jsonschema's (tenths of a millisecond on the larger forms). Only what it
does not pass goes to jsonschema, which decides and names each field's problem: the fast check
may be stricter (an e-mail address, say) but never accepts what jsonschema refuses (tests/test_forms.py).

A form's `pattern` is matched by RE2, in time linear in the answer: Python's `re`, which jsonschema
uses, backtracks: `^(a+)+$` would hold a worker for half an hour on a 35-character answer. Deployment
refuses patterns RE2 cannot compile (backreferences, look-around: `pattern_problems`); jsonschema-rs
matches patterns with the `regex` crate (also linear) or, for those features, fancy-regex, which gives
up after a bounded number of backtracking steps and then does not pass the answer.

What one person may send is bounded (`size_errors`): each answer, and all the answers of one form.
Answers are kept in the child's history for good and read again at every audit and replay, so the
runtime refuses larger ones before anything is stored, whoever sends them (a person, a single-use
link, a message); the web pages check first, so that nothing is saved as a draft either.

Every number in an answer must be finite and at most 15 digits long, whatever the form says: NaN and
infinity (`nan`, `1e309` typed in a number field) are no numbers a person means, JSON cannot store them,
and a child's history could not record them (engine/history.py refuses them); no amount, count or score
in a PEP has more digits, and longer numbers do not come back from the database as they went in
(PostgreSQL gives 1e16 back as an integer, and an integer past 64 bits cannot be stored at all).

Every date must be one a person means, from 1900 to 2199, whatever the form says: deadlines are
counted from the dates in answers (`working_days(5, meeting_date)`), and from the first or last day
there is (1/1/1, 31/12/9999) that count runs off the calendar. Such a date is refused with the form,
field by field, rather than left to fail the diagram's next step.

A date field may say when its date can be (`"x-when": "past"`: something done or held, today or before;
`"future"`: something planned, today or after), judged on the engine clock's day in London: a meeting
"held" next week, or one planned for last month, is refused with the form (`when_errors`).

The values of answers (dates, `x-when`, questions asked only for some answers) are in `formvalues`,
the problems in plain English in `formtext`, RE2 patterns in `patterns`; their names that other code
imports from here are re-exported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import lru_cache

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from .calendar import today
from .formtext import field_title, in_item, item_label, lower_first, plain_message, required_message, singular  # noqa: F401 - re-exported
from .formvalues import (  # noqa: F401 - re-exported
    ANY_ANSWER,
    FIRST_DATE,
    LAST_DATE,
    WHEN,
    drop_unasked,
    is_answer_date,
    parse_iso_date,
    reveals,
)
from .patterns import matches_pattern, pattern_problem, pattern_problems  # noqa: F401 - re-exported


def _pattern(validator, pattern, instance, schema):
    """jsonschema's `pattern`, in RE2 (its wording too)."""
    if validator.is_type(instance, "string") and not matches_pattern(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    """jsonschema's `patternProperties`, in RE2."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for name, value in instance.items():
            if matches_pattern(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


FormValidator = validators.extend(Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties})


_FORMATS = FormatChecker()
_FORMATS.checks("date")(is_answer_date)

MAX_DIGITS = 15  # of any number in an answer (a double holds every integer that long exactly)
LARGEST_NUMBER = 10**MAX_DIGITS - 1
MAX_ANSWER_CHARS = 50_000  # one answer: about 8,000 words, longer than any section of a PEP
MAX_ANSWERS_BYTES = 200_000  # all the answers of one form (or message), as JSON


def size_errors(data: dict, schema: str | dict | None = None) -> dict[str, str]:
    """{field path: message} for each answer longer than MAX_ANSWER_CHARS; else, if all the answers
    together are larger than MAX_ANSWERS_BYTES, one message for the form ("(form)"). Empty when within.
    `schema` (its JSON text or itself) gives the fields' titles."""
    schema = _validator(schema).schema if isinstance(schema, str) else schema or {}
    errors = {}
    for path, value in _strings(data, []):
        if len(value) > MAX_ANSWER_CHARS:
            errors[".".join(map(str, path))] = (
                f"{field_title(schema, path)} must be {MAX_ANSWER_CHARS:,} characters or less"
            )
    if errors:
        return errors
    try:
        size = len(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        size = len(json.dumps(data, default=str).encode())
    if size > MAX_ANSWERS_BYTES:
        return {
            "(form)": f"Your answers are too long to save ({-(-size // 1000):,} KB): one form can take up to "
            f"{MAX_ANSWERS_BYTES // 1000:,} KB. Shorten the longest answers, or attach long documents as files"
        }
    return {}


def text_errors(data: dict, schema: str | dict | None = None) -> dict[str, str]:
    """{field path: message} for each answer holding a NUL character, which is no text a person types and
    which PostgreSQL cannot store (the web pages refuse such a request before it gets here). `schema`
    (its JSON text or itself) gives the fields' titles."""
    schema = _validator(schema).schema if isinstance(schema, str) else schema or {}
    return {
        ".".join(map(str, path))
        or "(form)": f"{field_title(schema, path)}: remove the character that is not text (NUL)"
        for path, value in _strings(data, [])
        if "\x00" in value
    }


def _strings(value, path: list) -> Iterator[tuple[list, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, [*path, key])
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, [*path, index])


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Validator:
    return FormValidator(json.loads(schema_json), format_checker=_FORMATS)


@lru_cache(maxsize=512)
def _fast_check(schema_json: str) -> jsonschema_rs.Draft202012Validator | None:
    try:
        return jsonschema_rs.Draft202012Validator(
            json.loads(schema_json), validate_formats=True, formats={"date": is_answer_date}
        )
    except (ValueError, jsonschema_rs.ValidationError):  # a schema it cannot compile: jsonschema alone decides
        return None


def passes_fast_check(schema_json: str, data: dict) -> bool:
    """Whether the compiled validator passes `data` (False also when it cannot read the schema or data)."""
    check = _fast_check(schema_json)
    try:
        return check is not None and check.is_valid(data)
    except ValueError:  # a value that is not JSON (a date object, say): jsonschema decides
        return False


def field_errors(schema_json: str, data: dict) -> dict[str, str]:
    """Return {field path: message} for every problem in `data` (empty when valid), in GOV.UK's words:
    "Enter the venue", "Attendance this year (%) must be 100 or less", "Target 2: enter the strategy"."""
    not_numbers = list(_not_numbers(data))
    if not not_numbers and passes_fast_check(schema_json, data):
        return when_errors(schema_json, data)
    errors: dict[str, str] = {}
    validator = _validator(schema_json)
    for path, problem in not_numbers:
        errors[".".join(str(p) for p in path)] = in_item(
            validator.schema, path, problem.format(label=field_title(validator.schema, path))
        )
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path.append(missing)
            message = required_message(validator.schema, path)
        else:
            message = plain_message(error, validator.schema, path)
        errors.setdefault(".".join(str(p) for p in path) or "(form)", in_item(validator.schema, path, message))
    return errors or when_errors(schema_json, data)


def when_errors(schema_json: str, data: dict) -> dict[str, str]:
    """{field path: message} for each date answer on the wrong side of today (the field's `x-when`)."""
    rules = _when_rules(schema_json)
    if not rules:
        return {}
    day, errors = today(), {}
    for path, value in _dates_at(data, rules, ()):
        rule = rules[tuple(p for p in path if not isinstance(p, int))]
        if (value > day) if rule == "past" else (value < day):
            schema = _validator(schema_json).schema
            errors[".".join(map(str, path))] = in_item(
                schema, list(path), f"{field_title(schema, list(path))} must be {WHEN[rule]}"
            )
    return errors


@lru_cache(maxsize=512)
def _when_rules(schema_json: str) -> dict[tuple, str]:
    """The `x-when` of each date field, by its path of names (list items share their list's path)."""
    rules: dict[tuple, str] = {}

    def walk(node: dict, path: tuple) -> None:
        if node.get("x-when") in WHEN:
            rules[path] = node["x-when"]
        for name, spec in (node.get("properties") or {}).items():
            if isinstance(spec, dict):
                walk(spec, (*path, name))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path)

    walk(json.loads(schema_json), ())
    return rules


def _dates_at(value, rules: dict, path: tuple) -> Iterator[tuple[tuple, str]]:
    names = tuple(p for p in path if not isinstance(p, int))
    if isinstance(value, str) and names in rules and parse_iso_date(value):
        yield path, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _dates_at(item, rules, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _dates_at(item, rules, (*path, index))


def _not_numbers(value, path: tuple = ()) -> Iterator[tuple[list, str]]:
    """(path, what to enter instead) of every number in the answers that is no number a person means:
    not finite (NaN, infinity), or longer than MAX_DIGITS digits."""
    if isinstance(value, float) and not math.isfinite(value):
        yield list(path), "{label} must be a number"
    elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > LARGEST_NUMBER:
        yield list(path), f"{{label}} must be {MAX_DIGITS} digits or fewer"
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _not_numbers(item, (*path, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _not_numbers(item, (*path, index))
