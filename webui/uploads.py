"""Files attached to a task's answers: check and store the files chosen, keep only the child's files in the
answers, name them for the page, and take a file off a draft.

Called by the task page (webui/inbox.py) and a single-use link's page (webui/links.py). The rule that
answers name only files kept for the child is the engine's (`engine.attachments`, checked when a task is
completed); this module keeps a page from offering any other file.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app, url_for
from sqlalchemy import func, select

from engine.attachments import attachment_answers, kept_files, remove_from_draft, store
from engine.mail import one_line
from engine.models import Attachment

from .context import db, now
from .formschema import NewFile, drop_path

ALLOWED_UPLOADS = {
    "application/pdf",
    "image/png",
    "image/jpeg",
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
MB = 1024 * 1024


def new_files(data) -> list[tuple[str, NewFile]]:
    """(path, file) of each file chosen in the posted answers, wherever it is."""
    found, stack = [], [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, NewFile):
            found.append((path, value))
        elif isinstance(value, dict):
            stack += [(f"{path}{key}" if not path else f"{path}.{key}", item) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(f"{path}.{i}", item) for i, item in enumerate(value)]
    return sorted(found, key=lambda found: found[0])


def as_kept(value):
    """The answers with each file chosen replaced by the file its field held before (or left out, or left
    empty in a list): what is kept when the files chosen are not."""
    if isinstance(value, dict):
        return {key: kept for key, item in value.items() if not _gone(item, kept := as_kept(item))}
    if isinstance(value, list):  # an item stays, empty, so that a refusal is shown at its field
        return ["" if _gone(item, kept := as_kept(item)) else kept for item in value]
    return value.kept if isinstance(value, NewFile) else value


def _gone(item, kept) -> bool:
    return isinstance(item, NewFile) and kept is None


def check_uploads(data: dict, uploader: str) -> dict[str, str]:
    """{field path: message} for each file chosen that is refused (its type, its size, or the uploader's
    daily allowance); the content of the others is read."""
    config = current_app.config
    errors, chosen = {}, new_files(data)
    for path, file in chosen:
        file.content = file.upload.read(config["UPLOAD_MAX_BYTES"] + 1)
        if file.upload.mimetype not in ALLOWED_UPLOADS:
            errors[path] = "The selected file must be a PDF, Word document, image (PNG or JPEG) or text file"
        elif len(file.content) > config["UPLOAD_MAX_BYTES"]:
            errors[path] = f"The selected file must be smaller than {config['UPLOAD_MAX_BYTES'] // MB} MB"
        elif not file.content:
            errors[path] = "The selected file is empty"
    if errors or not chosen:
        return errors
    since = now() - timedelta(days=1)
    uploaded = db().scalar(
        select(func.coalesce(func.sum(Attachment.size), 0)).where(
            Attachment.uploaded_by == uploader, Attachment.uploaded_at > since
        )
    )
    if uploaded + sum(len(file.content) for _, file in chosen) > config["UPLOAD_DAILY_BYTES"]:
        message = (
            f"You can upload up to {config['UPLOAD_DAILY_BYTES'] // MB} MB of files in a day. "
            "Try again tomorrow, or ask the Virtual School to add the file"
        )
        return {path: message for path, _ in chosen}
    return {}


def store_uploads(data: dict, child_id: str, uploader: str) -> None:
    """Keep each file chosen (checked by `check_uploads`) for the child, its id in the answers in its place."""
    chosen = name_uploads(data)
    store_named(chosen, set(chosen), child_id, uploader)


def name_uploads(data: dict) -> dict[str, NewFile]:
    """Give each file chosen (checked by `check_uploads`) the id it is to be kept under, in its place in
    the answers: the answers can be checked, and refused, before anything is stored (`store_named`)."""
    chosen = {}
    for path, file in new_files(data):
        file.id = str(uuid.uuid4())
        _set(data, path, file.id)
        chosen[file.id] = file
    return chosen


def store_named(chosen: dict[str, NewFile], named: set[str], child_id: str, uploader: str) -> None:
    """Keep for the child each file chosen that the answers still name (`named`: a file's field may
    have gone unasked), under the id `name_uploads` gave it."""
    for file_id, file in chosen.items():
        if file_id in named:
            filename = one_line(file.upload.filename, 255)
            store(db(), child_id, filename, file.upload.mimetype, file.content, uploader, now(), attachment_id=file_id)


def _set(data, path: str, value) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


def keep_known_files(schema: dict, data: dict, child_id: str) -> list[str]:
    """Leave out of the answers every file that is not one kept for this child (one named by an altered
    page, or since removed). Returns the fields emptied."""
    named = attachment_answers(schema, data)
    kept = kept_files(db(), child_id, [value.kept if isinstance(value, NewFile) else value for _, value in named])
    emptied = []
    for path, value in reversed(named):  # the last first, so that an item removed moves none still to check
        if isinstance(value, NewFile):
            value.kept = value.kept if value.kept in kept else None
        elif value not in kept:
            drop_path(data, path)
            emptied.append(path)
    return emptied[::-1]


def files_named(schema: dict, data: dict | None) -> set[str]:
    """The ids of the files the answers name (a file chosen: the one its field held before)."""
    return {
        value.kept if isinstance(value, NewFile) else value for _, value in attachment_answers(schema, data or {})
    } - {None}


def remove_left(schema: dict, before: set[str], after: dict, child_id: str, uploader: str) -> list[str]:
    """Remove the files the answers named `before` and no longer name (taken off, replaced, or in an item
    removed), where nothing else holds them (`engine.attachments.remove_from_draft`)."""
    return remove_from_draft(db(), child_id, before - files_named(schema, after), uploader, now())


def file_links(schema: dict, data: dict, child_id: str, linked: bool = True) -> dict[str, dict]:
    """{field path: {"name", "href"}} of each file the answers name, for the page (no link for a person
    who is not signed in)."""
    named = [(path, value) for path, value in attachment_answers(schema, data) if isinstance(value, str)]
    if not named:
        return {}
    names = dict(
        db()
        .execute(
            select(Attachment.id, Attachment.filename).where(
                Attachment.id.in_({value for _, value in named}),
                Attachment.child_id == child_id,
                Attachment.removed_at.is_(None),
            )
        )
        .all()
    )
    return {
        path: {
            "name": names.get(value) or "file",
            "href": url_for("cases.attachment", attachment_id=value) if linked and value in names else None,
        }
        for path, value in named
    }
