"""Files given with answers: which answers name a file, that each names a file kept for the child, which
of the child's files the record holds, and taking a file off a draft.

Called by `runtime.complete_task` (answers naming a file that is not the child's are refused) and by the
web app (uploads, the child's page, a file removed from a draft). A file is named by its attachment id,
in any field whose form says `"x-widget": "attachment"`: a single answer, an item of a repeatable
answer, or a field of a group or of a repeatable group's item.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarResult, select
from sqlalchemy.orm import Session

from . import history
from .models import Attachment, Event, OpenTask, TaskDraft

NOT_FOUND = "The selected file could not be found. Select the file again"


def is_attachment(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("x-widget") == "attachment"


def attachment_answers(schema: dict, data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every answer in `data` that the form says is a file, in the form's order."""
    found: list[tuple[str, Any]] = []
    if not isinstance(data, dict):
        return found
    for name, spec in (schema.get("properties") or {}).items():
        if name in data:
            found += _answers(f"{prefix}{name}", spec, data[name])
    return found


def _answers(path: str, spec: Any, value: Any) -> list[tuple[str, Any]]:
    if not isinstance(spec, dict):
        return []
    if is_attachment(spec):
        return [(path, value)]
    if isinstance(value, dict):
        return attachment_answers(spec, value, f"{path}.")
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        return [found for i, item in enumerate(value) for found in _answers(f"{path}.{i}", spec["items"], item)]
    return []


def store(
    session: Session,
    child_id: str,
    filename: str,
    content_type: str,
    content: bytes,
    uploaded_by: str,
    at: datetime,
    attachment_id: str | None = None,
) -> Attachment:
    """Keep a file for the child (in the caller's transaction); answers name it by the returned row's id."""
    attachment = Attachment(
        id=attachment_id or str(uuid.uuid4()),
        child_id=child_id,
        filename=filename,
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by=uploaded_by,
        uploaded_at=at,
    )
    session.add(attachment)
    return attachment


def unknown_files(session: Session, child_id: str, schema: dict, data: dict) -> dict[str, str]:
    """{path: message} for each answer that names no file kept for this child: a file that never was
    stored, one taken off a draft, or another child's."""
    named = [(path, value) for path, value in attachment_answers(schema, data) if value is not None]
    if not named:
        return {}
    kept = kept_files(session, child_id, [value for _, value in named])
    return {path: NOT_FOUND for path, value in named if value not in kept}


def kept_files(session: Session, child_id: str, ids) -> set[str]:
    """Those of `ids` that name a file kept for this child (stored, not removed)."""
    ids = {value for value in ids if isinstance(value, str)}
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Attachment.id).where(
                Attachment.id.in_(ids), Attachment.child_id == child_id, Attachment.removed_at.is_(None)
            )
        )
    )


def files_in_record(session: Session, child_id: str) -> dict[str, Event]:
    """The child's files that a submitted answer (or message) names, each with the first event naming it."""
    ids = set(session.scalars(select(Attachment.id).where(Attachment.child_id == child_id)))
    found: dict[str, Event] = {}
    if not ids:
        return found
    for event in history.events(session, child_id):
        for value in _strings(event.data.get("data")):
            if value in ids:
                found.setdefault(value, event)
    return found


def _strings(value: Any):
    stack = [value]
    while stack:  # iterative: answers may nest as deep as a form allows
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list):
            stack += item


def remove_from_draft(session: Session, child_id: str, ids: set[str], uploader: str, at: datetime) -> list[str]:
    """Remove the files of `ids` that have left a draft: each one `uploader` stored for this child that no
    submitted answer names and no draft of the child's open tasks still holds has its content emptied and
    is marked removed (the row stays, so the day's upload allowance still counts it). Files in the record
    are never touched: the history goes on naming what was submitted. Returns the ids removed."""
    if not ids:
        return []
    candidates = session.scalars(
        select(Attachment).where(
            Attachment.id.in_(ids),
            Attachment.child_id == child_id,
            Attachment.uploaded_by == uploader,
            Attachment.removed_at.is_(None),
        )
    ).all()
    if not candidates:
        return []
    held = set(files_in_record(session, child_id))
    drafts: ScalarResult[dict] = session.scalars(
        select(TaskDraft.data).join(OpenTask, OpenTask.id == TaskDraft.task_id).where(OpenTask.child_id == child_id)
    )
    for data in drafts:
        held.update(_strings(data))
    removed = []
    for attachment in candidates:
        if attachment.id not in held:
            attachment.content, attachment.removed_at = b"", at
            removed.append(attachment.id)
    return removed
