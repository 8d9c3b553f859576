"""What a person's answers must pass before they are applied, and what a task's page is built from.

Answers are refused, field by field, when they are not text the app keeps (`forms.text_errors`), too
large or invalid against the task's form; then by the task's own `validate` rule, which the diagram
writes; then (once the files given with them are stored) when they name a file the child's record does
not hold. A page's basis (`page_basis`) says whether a
change to the PEP since the page was read touched what the page shows.
"""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy.orm import Session

from .attachments import unknown_files
from .errors import FormInvalid
from .forms import field_errors, size_errors, text_errors
from .vocabulary import INSTRUCTIONS, VALIDATE_PROPERTY, properties


def refusals(source: str | None, data: dict) -> dict[str, str]:
    """The answers' problems against the task's form (`source`), the first kind found."""
    return text_errors(data, source) or size_errors(data, source) or (field_errors(source, data) if source else {})


def files_refused(session: Session, child_id: str, schema: dict | None, data: dict) -> None:
    """Refuse answers naming a file the child's record does not hold (checked once the files given with
    them are stored: `complete_task`'s `keep`)."""
    errors = unknown_files(session, child_id, schema, data) if schema is not None else {}
    if errors:
        raise FormInvalid(errors)


def check_rules(script_engine, step, task, data: dict) -> None:
    """Run the task's `validate` rule over the process data with the answers; refuse on errors."""
    expression = properties(task.task_spec).get(VALIDATE_PROPERTY)
    if not expression:
        return
    try:
        errors = script_engine.environment.check(expression, {**task.data, **data})
    except Exception as exc:  # a broken rule is the diagram's fault
        raise step.failure(exc, task.task_spec.bpmn_id) from exc
    if errors:
        if not isinstance(errors, dict):
            raise step.failure(
                TypeError("the validate rule must give a dict of field: message"), task.task_spec.bpmn_id
            )
        raise FormInvalid({str(k): str(v) for k, v in errors.items()})


def page_basis(serializer, task, form_source: str | None) -> str:
    """A digest of what a ready task's page is built from: its form, its instructions and the
    process data it shows and pre-fills (the task's own copy, as stored). Another branch moving on
    leaves it as it was; a new version of the process can change its form."""
    digest = hashlib.sha256((form_source or "").encode())
    digest.update(b"\0" + (task.task_spec.extensions.get(INSTRUCTIONS) or "").encode())
    digest.update(
        b"\0"
        + orjson.dumps(serializer.registry.convert(task.data), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    )
    return digest.hexdigest()[:32]
