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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import date
from functools import lru_cache

import jsonschema_rs
import orjson
import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from .calendar import today


def _pattern(validator, pattern, instance, schema):
    """jsonschema's `pattern`, in RE2 (its wording too)."""
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    """jsonschema's `patternProperties`, in RE2."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for name, value in instance.items():
            if _matches(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


FormValidator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties})


FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2199, 12, 31)  # of any date in an answer
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: str) -> date | None:
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
    day = _iso_date(value)
    return day is not None and FIRST_DATE <= day <= LAST_DATE


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
            errors[".".join(map(str, path))] = f"{_title(schema, path)} must be {MAX_ANSWER_CHARS:,} characters or less"
    if errors:
        return errors
    try:
        size = len(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        size = len(json.dumps(data, default=str).encode())
    if size > MAX_ANSWERS_BYTES:
        return {"(form)": f"Your answers are too long to save ({-(-size // 1000):,} KB): one form can take up to "
                          f"{MAX_ANSWERS_BYTES // 1000:,} KB. Shorten the longest answers, or attach long documents as files"}
    return {}


def text_errors(data: dict, schema: str | dict | None = None) -> dict[str, str]:
    """{field path: message} for each answer holding a NUL character, which is no text a person types and
    which PostgreSQL cannot store (the web pages refuse such a request before it gets here). `schema`
    (its JSON text or itself) gives the fields' titles."""
    schema = _validator(schema).schema if isinstance(schema, str) else schema or {}
    return {".".join(map(str, path)) or "(form)": f"{_title(schema, path)}: remove the character that is not text (NUL)"
            for path, value in _strings(data, []) if "\x00" in value}


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
        return jsonschema_rs.Draft202012Validator(json.loads(schema_json), validate_formats=True,
                                                  formats={"date": is_answer_date})
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
        errors[".".join(str(p) for p in path)] = _in_item(validator.schema, path, problem.format(
            label=_title(validator.schema, path)))
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path.append(missing)
            message = _required(validator.schema, path)
        else:
            message = _plain(error, validator.schema, path)
        errors.setdefault(".".join(str(p) for p in path) or "(form)", _in_item(validator.schema, path, message))
    return errors or when_errors(schema_json, data)


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
            errors[".".join(map(str, path))] = _in_item(schema, list(path), f"{_title(schema, list(path))} must be {WHEN[rule]}")
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
    if isinstance(value, str) and names in rules and _iso_date(value):
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


def _node(schema: dict, path: list) -> dict:
    """The schema of the field at `path` (an empty one where the path leads nowhere the schema says)."""
    node = schema
    for part in path:
        node = (node.get("items") if isinstance(part, int) else (node.get("properties") or {}).get(part)) or {}
        if not isinstance(node, dict):
            return {}
    return node


def _title(schema: dict, path: list) -> str:
    """The human title of the field at `path` (its own, not its item's), falling back to its name."""
    names = [part for part in path if not isinstance(part, int)]
    if not names:
        return "The form"
    if isinstance(path[-1], int):  # one answer of a repeatable answer: "Date 2"
        return f"{item_label(_node(schema, path[:-1]), str(names[-1]))} {path[-1] + 1}"
    node = _node(schema, path)
    return str(node.get("title") or names[-1].replace("_", " ").capitalize())


def singular(title: str) -> str:
    """A list's title for one of its items: "SMART targets" → "SMART target" (a title already singular stays)."""
    if title.endswith("ies") and len(title) > 4:
        return title[:-3] + "y"
    if title.endswith("s") and not title.endswith(("ss", "us", "is")):
        return title[:-1]
    return title


def item_label(spec: dict, name: str = "") -> str:
    """What one item of a repeatable answer is called: its `x-item-label`, its items' title, or the list's
    title made singular ("Target", "Attendee")."""
    items = spec.get("items") if isinstance(spec.get("items"), dict) else {}
    label = spec.get("x-item-label") or items.get("title") or singular(str(spec.get("title") or name or "Item"))
    return str(label)


def lower_first(text: str) -> str:
    """A label inside a sentence: "Venue" → "venue", "The child's views" → "the child's views"; but a name
    stays as it is: "SMART targets", "EHCP", "I", "Pupil Premium Plus", "Social Worker"."""
    words = text.split(" ")
    first, second = words[0], words[1] if len(words) > 1 else ""
    if len(first) < 2 or not first[1:].islower() or second[:1].isupper() and second[1:2].islower():
        return text
    return first[:1].lower() + text[1:]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _in_item(schema: dict, path: list, message: str) -> str:
    """A problem inside an item of a repeatable answer, named by the item: "Target 2: enter the strategy"."""
    prefix, node = [], schema
    for part in path[:-1]:
        if isinstance(part, int):
            prefix.append(f"{item_label(node)} {part + 1}")
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(part) or {}
        if not isinstance(node, dict):
            break
    if not prefix:
        return message
    verb = message.split(" ")[0]
    if verb in ("Enter", "Select", "Add", "Tick", "Answer"):  # "Target 2: enter Pupil Premium Plus (£)"
        return ": ".join(prefix) + ": " + verb.lower() + message[len(verb):]
    return ": ".join(prefix) + ": " + lower_first(message)


CHOICE = "choice"


def _kind(node: dict) -> str:
    """How a person answers a field: "choice" (radios, a select, checkboxes, a yes/no), "file", "list"
    (a repeatable group), "values" (a repeatable answer), "group", "confirm" or "text" (typed: text,
    numbers, dates)."""
    kind = node.get("type")
    kinds = [k for k in kind if k != "null"] if isinstance(kind, list) else [kind]
    if node.get("x-widget") == "attachment":
        return "file"
    if "boolean" in kinds and (node.get("const") is True or node.get("enum") == [True]):
        return "confirm"
    if "enum" in node or "boolean" in kinds:
        return CHOICE
    if "array" in kinds:
        items = node.get("items") if isinstance(node.get("items"), dict) else {}
        if "enum" in items:
            return CHOICE
        return "list" if items.get("type") == "object" or "properties" in items else "values"
    if "object" in kinds or "properties" in node:
        return "group"
    return "text"


def _required(schema: dict, path: list) -> str:
    """The message for an answer left out: the field's `x-error-required`, or "Enter …" / "Select …"."""
    node = _node(schema, path)
    if node.get("x-error-required"):
        return str(node["x-error-required"])
    label = lower_first(_title(schema, path))
    if label.endswith("?") and _kind(node) in (CHOICE, "text"):
        return f"Answer the question: {_title(schema, path)}"
    match _kind(node):
        case "choice":
            return f"Select {label}"
        case "file":
            return f"Select a file for {label}"
        case "confirm":
            return f"Tick the box to confirm: {_title(schema, path)}"
        case "list" | "values":
            return f"Add at least 1 {lower_first(item_label(node, str(path[-1])))}"
        case "group":
            return f"Answer the questions under {label}"
    return f"Enter {label}"


def _plain(error, schema: dict, path: list) -> str:
    """One problem with an answer, in a sentence naming the field."""
    node = error.schema if isinstance(error.schema, dict) else {}
    own = node.get("errorMessage")
    label = _title(schema, path)
    value = error.validator_value
    if own and error.validator not in ("type", "required") and not (error.validator == "minLength" and value == 1):
        return f"{label} {own}" if own.startswith("must ") else _sentence(own)
    match error.validator:
        case "enum" | "const" if _kind(_node(schema, path)) == "confirm":
            return _required(schema, path)
        case "enum" | "const":
            return _required(schema, path) if _kind(_node(schema, path)) == CHOICE else f"Select {lower_first(label)}"
        case "minimum":
            return f"{label} must be {value} or more"
        case "maximum":
            return f"{label} must be {value} or less"
        case "exclusiveMinimum":
            return f"{label} must be more than {value}"
        case "exclusiveMaximum":
            return f"{label} must be less than {value}"
        case "minLength" if value == 1:
            return _required(schema, path)
        case "minLength":
            return f"{label} must be {value} characters or more"
        case "maxLength":
            return f"{label} must be {value} characters or less"
        case "pattern":
            return f"Enter {lower_first(label)} in the right format"
        case "format" if value == "date" and isinstance(error.instance, str) and _iso_date(error.instance):
            return f"{label} must be between {FIRST_DATE.year} and {LAST_DATE.year}"
        case "format" if value == "date":
            return f"{label} must be a real date"
        case "format":
            return f"{label} must be a valid {value}"
        case "type" if value in ("number", "integer") or (isinstance(value, list) and "number" in value):
            return f"{label} must be {'a whole number' if value == 'integer' else 'a number'}"
        case "type":
            return _required(schema, path) if error.instance in ("", None) else f"{label} must be {_a(value)}"
        case "minItems":
            return _too_few(schema, path, value)
        case "maxItems":
            return f"{label} can have {value} at most"
        case "uniqueItems":
            return f"{label} must not have the same answer twice"
        case _:
            return f"{label}: {error.message}"


def _a(kind) -> str:
    names = {"string": "text", "boolean": "yes or no", "object": "a group of answers", "array": "a list of answers"}
    return " or ".join(names.get(k, str(k)) for k in (kind if isinstance(kind, list) else [kind]))


def _too_few(schema: dict, path: list, count: int) -> str:
    node = _node(schema, path)
    if _kind(node) == CHOICE:
        return f"Select {lower_first(_title(schema, path))}" if count == 1 else \
            f"Select at least {count} for {lower_first(_title(schema, path))}"
    item = lower_first(item_label(node, str(path[-1]) if path else ""))
    return f"Add at least {count} {item if count == 1 else _plural(item)}"


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"


# ---- patterns: RE2, linear in the answer ------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a pattern it cannot compile is reported by pattern_problems, not logged
# ECMA-262's \s, which JSON Schema patterns (and jsonschema-rs) use: RE2's is ASCII only
_ECMA_SPACE = r"\t\n\x0B\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}"
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_EXPONENTIAL = re.compile(r"invalid escape sequence: \\[1-9k]|invalid perl operator: \(\?<?[=!]")


def _re2_syntax(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern in RE2's syntax: `\\uXXXX` escapes and ECMA's `\\s`."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            code = pattern[i + 1]
            if code == "u" and _HEX4.fullmatch(pattern, i + 2, i + 6):
                out.append(rf"\x{{{pattern[i + 2:i + 6]}}}")
                i += 6
                continue
            if code == "s":
                out.append(_ECMA_SPACE if in_class else f"[{_ECMA_SPACE}]")
            elif code == "S" and not in_class:
                out.append(f"[^{_ECMA_SPACE}]")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            start = i + 2 if pattern.startswith("[^", i) else i + 1
            if pattern.startswith("]", start):  # RE2 reads a leading ] as the character
                out.append(pattern[i:start + 1])
                i = start + 1
                continue
        elif char == "[" and pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) != -1:
            out.append(pattern[i:end + 2])  # a POSIX class, [:alpha:]
            i = end + 2
            continue
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def _re2(pattern: str):
    """The pattern compiled by RE2, or its reason for refusing it."""
    try:
        return re2.compile(_re2_syntax(pattern), _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not a pattern"
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


@lru_cache(maxsize=256)
def _bounded(pattern: str) -> jsonschema_rs.Validator | None:
    """fancy-regex's matcher (bounded backtracking) for a pattern RE2 refuses, or None."""
    try:
        return jsonschema_rs.validator_for({"pattern": pattern})
    except (ValueError, jsonschema_rs.ValidationError):
        return None


def _matches(pattern: str, text: str) -> bool:
    compiled = _re2(pattern)
    try:
        if not isinstance(compiled, str):
            return compiled.search(text) is not None
        # Only in a form deployed before patterns were checked: fancy-regex gives up (no match) in bounded time
        bounded = _bounded(pattern)
        return bounded is not None and bounded.is_valid(text)
    except (UnicodeError, ValueError):  # a lone surrogate: not text either engine reads
        return False


def pattern_problem(pattern: str) -> str | None:
    """Why this service refuses a form's pattern (None when RE2 matches it, in linear time)."""
    reason = _re2(pattern)
    if not isinstance(reason, str):
        return None
    if _EXPONENTIAL.search(reason) or (reason.startswith("invalid perl operator: (?P") and "(?P=" in pattern):
        return (f'pattern "{pattern}" uses a backreference or look-around, which this service does not accept: '
                "it could take exponential time")
    return f'pattern "{pattern}" is not one this service can check safely ({reason})'


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties",
               "contains", "propertyNames", "not", "if", "then", "else")


def pattern_problems(schema, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(JSON path, problem) of every `pattern` and `patternProperties` pattern in a schema that this service
    refuses, in nested properties, list items, $defs and the other subschemas too."""
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("pattern"), str) and (problem := pattern_problem(schema["pattern"])):
        yield "/".join((*path, "pattern")), problem
    if isinstance(schema.get("patternProperties"), dict):
        for pattern in schema["patternProperties"]:
            if problem := pattern_problem(pattern):
                yield "/".join((*path, "patternProperties", pattern)), problem
    for keyword in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(keyword), dict):
            for name, subschema in schema[keyword].items():
                yield from pattern_problems(subschema, (*path, keyword, name))
    for keyword in _SUBSCHEMA_LISTS + _SUBSCHEMAS:
        value = schema.get(keyword)
        if isinstance(value, list):
            for index, subschema in enumerate(value):
                yield from pattern_problems(subschema, (*path, keyword, str(index)))
        else:
            yield from pattern_problems(value, (*path, keyword))
