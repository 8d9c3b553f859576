"""The checks deploy makes of a bundle's forms: valid JSON, a JSON Schema of an object whose patterns
RE2 matches, `x-when` on date fields only, no field named like a function diagrams use or a name the
task page keeps, what a review form shows (`x-reviews`), and the statutory (`x-event`), PP+ and
quality declarations. Each error says what is refused and why.
"""

from __future__ import annotations

import functools
import json

from jsonschema import Draft202012Validator, SchemaError

from . import formdecl, ppplus, quality, statutory
from .allowlist import PROTECTED_NAMES
from .bundle import REVIEWS_KEY, WHOLE_PEP, Bundle, DeployError
from .forms import WHEN, pattern_problems


def check_form(path: str, content: str) -> list[DeployError]:
    """Check one form file: valid JSON, and (unless a UI schema) a JSON Schema of an object whose
    patterns RE2 matches (in time linear in the answer)."""
    return list(_form_errors(path, content))


@functools.lru_cache(maxsize=2048)
def _form_errors(path: str, content: str) -> tuple[DeployError, ...]:
    """The checks of one form file, remembered: checking a schema against the meta-schema is the
    slowest part of a deployment, and the modeller redeploys mostly unchanged forms."""
    try:
        schema = json.loads(content)
    except json.JSONDecodeError as exc:
        return (DeployError(path, None, f"is not valid JSON: {exc.msg}", exc.lineno),)
    if path.endswith(".uischema.json"):
        return ()
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return (DeployError(path, where, f"is not a valid JSON Schema: {exc.message}"),)
    if schema.get("type") != "object":
        return (DeployError(path, "(root)", 'a form schema must have "type": "object"'),)
    reserved = tuple(
        DeployError(path, name, f'"{name}" is a name the task page keeps for itself: rename the field')
        for name in _property_names(schema)
        if name.startswith("_") or name == "csrf_token"
    )
    return (
        reserved
        + tuple(DeployError(path, where, problem) for where, problem in pattern_problems(schema))
        + tuple(DeployError(path, where, problem) for where, problem in _when_problems(schema))
    )


def _when_problems(node: dict, where: str = ""):
    """(field, problem) for each `x-when` that is not "past" or "future" on a date field."""
    if "x-when" in node and (node["x-when"] not in WHEN or node.get("format") != "date"):
        yield (
            where or "(root)",
            f'x-when is {json.dumps(node["x-when"])}: it may say "past" (today or before) or '
            '"future" (today or after), on a field of "format": "date"',
        )
    for name, spec in (node.get("properties") or {}).items():
        if isinstance(spec, dict):
            yield from _when_problems(spec, f"{where}.{name}" if where else name)
    if isinstance(node.get("items"), dict):
        yield from _when_problems(node["items"], f"{where}[]")


def shadowing_errors(path: str, content: str) -> list[DeployError]:
    """A form's fields become task data, which diagram code reads by name: a field may not take the name
    of a built-in or a calendar function."""
    return [
        DeployError(path, name, f'"{name}" is the name of a function diagrams use: rename the field')
        for name in sorted(set(_property_names(json.loads(content))) & PROTECTED_NAMES)
    ]


def reviews_errors(path: str, bundle: Bundle) -> list[DeployError]:
    """A form's `x-reviews` must say "pep" or list forms of the bundle (by their file names in forms/)."""
    schema = json.loads(bundle.files[path])
    if REVIEWS_KEY not in schema:
        return []
    value = schema[REVIEWS_KEY]
    if schema.get("x-single-use-link"):
        return [
            DeployError(
                path,
                REVIEWS_KEY,
                f"{REVIEWS_KEY} cannot be used on a form answered through a "
                "single-use link: the PEP is never shown to someone without an account",
            )
        ]
    if value == WHOLE_PEP:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        return [
            DeployError(
                path,
                REVIEWS_KEY,
                f"{REVIEWS_KEY} is {json.dumps(value)}, which says nothing a task can "
                f'show: write "{WHOLE_PEP}" (every section of the PEP submitted so far) or a list of the '
                'forms whose answers the task shows, such as ["review_complete_epep.schema.json"]',
            )
        ]
    return [
        DeployError(path, REVIEWS_KEY, f'{REVIEWS_KEY} names the form "{name}", which is not in forms/')
        for name in value
        if f"forms/{name}" not in bundle.files
    ]


def form_event_errors(path: str, content: str) -> list[DeployError]:
    """A form's `x-event` declarations: a known event, on a date question of the form itself."""
    if path.endswith(".uischema.json"):
        return []
    return [DeployError(path, where, problem) for where, problem in statutory.form_event_problems(json.loads(content))]


def oversight_errors(path: str, content: str) -> list[DeployError]:
    """A form's PP+ ledger (`x-ppplus`) and quality (`x-qa-rating`, `x-qa-criterion`) declarations."""
    if path.endswith(".uischema.json"):
        return []
    schema = json.loads(content)
    return [
        DeployError(path, where, problem)
        for where, problem in ppplus.form_problems(schema) + quality.form_problems(schema)
    ] + [DeployError(path, where, problem, line) for where, problem, line in formdecl.form_problems(schema, content)]


def _property_names(schema: dict):
    """Every property name of a form schema, in nested groups and list items too."""
    for name, spec in (schema.get("properties") or {}).items():
        yield name
        if isinstance(spec, dict):
            yield from _property_names(spec)
            if isinstance(spec.get("items"), dict):
                yield from _property_names(spec["items"])
