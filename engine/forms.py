"""Validate submitted form data against a user task's JSON Schema, field by field.

Called by the runtime before a task runs; the web layer shows the errors next to each field.

Most submissions are valid, so they are first checked by jsonschema-rs's compiled validator, a
hundred times faster than jsonschema's (tenths of a millisecond on the larger forms). Only what it
does not pass goes to jsonschema, which decides and names each field's problem: the fast check
may be stricter (an e-mail address, say) but never accepts what jsonschema refuses (tests/test_forms.py).
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=FormatChecker())


@lru_cache(maxsize=512)
def _fast_check(schema_json: str) -> jsonschema_rs.Draft202012Validator | None:
    try:
        return jsonschema_rs.Draft202012Validator(json.loads(schema_json), validate_formats=True)
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
    """Return {field path: message} for every problem in `data` (empty when valid)."""
    if passes_fast_check(schema_json, data):
        return {}
    errors: dict[str, str] = {}
    validator = _validator(schema_json)
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path.append(missing)
            message = f"{_title(validator.schema, path)} is required"
        else:
            message = f"{_title(validator.schema, path)}: {_plain(error)}"
        errors.setdefault(".".join(str(p) for p in path) or "(form)", message)
    return errors


def _title(schema: dict, path: list) -> str:
    """The human title of the field at `path`, falling back to its name."""
    node, title = schema, None
    for part in path:
        if isinstance(part, int):
            node, title = node.get("items", {}), f"{title or 'item'} {part + 1}"
            continue
        node = node.get("properties", {}).get(part, {})
        title = node.get("title") or part.replace("_", " ").capitalize()
    return title or "The form"


def _plain(error) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    match error.validator:
        case "enum":
            return "choose one of " + ", ".join(map(str, error.validator_value))
        case "minimum":
            return f"must be {error.validator_value} or more"
        case "maximum":
            return f"must be {error.validator_value} or less"
        case "minLength" if error.validator_value == 1:
            return "must not be empty"
        case "minLength":
            return f"must be at least {error.validator_value} characters"
        case "maxLength":
            return f"must be at most {error.validator_value} characters"
        case "format":
            return f"must be a valid {error.validator_value}" + (" (YYYY-MM-DD)" if error.validator_value == "date" else "")
        case "type":
            return f"must be a {error.validator_value}"
        case "minItems":
            return f"needs at least {error.validator_value}"
        case "maxItems":
            return f"allows at most {error.validator_value}"
        case _:
            return schema.get("errorMessage") or error.message
