"""Answers posted to a task's page, read in the engine's one pass through a submission
(`Engine.complete_task`): parsed from the request with the form the engine's locked read returns, checked
for size and for the files chosen, each file chosen named by the id it is to be kept under, and stored
once the engine has accepted the answers (`keep`), or with what keeps refused answers.

Called by the task page (webui/inbox.py) and a single-use link's page (webui/links.py).
"""

from __future__ import annotations

from flask import request

from engine.forms import drop_unasked, size_errors

from .formschema import parse_submission, task_schema
from .uploads import as_kept, check_uploads, files_named, keep_known_files, name_uploads, store_named


class Refused(Exception):  # noqa: N818 - what the person is told, not a fault
    """Answers refused before they reached the engine (too long, a file refused): `errors` by field, and
    `typed`, the answers without the files chosen, to show again."""

    def __init__(self, errors: dict[str, str], typed: dict) -> None:
        super().__init__(errors)
        self.errors, self.typed = errors, typed


class Posted:
    """The answers posted to a task's page by `uploader`, read once the engine has found they may do the
    task (`read`, given to `complete_task` as its reader)."""

    def __init__(self, uploader: str) -> None:
        self.uploader = uploader
        self.form: dict | None = None  # None until the engine's read: it found no task they may do
        self.chosen: dict = {}
        self.data: dict = {}
        self.typed: dict = {}  # the answers without the files chosen: all there is if nothing can be stored

    def read(self, form: dict) -> dict:
        self.form, self.open_task, self.schema = form, form["task"], task_schema(form)
        data = self.parse()
        refused = size_errors(as_kept(data), self.schema) or check_uploads(data, self.uploader)
        if refused:
            raise Refused(refused, as_kept(data))
        data = drop_unasked(self.schema, data)  # a question the other answers do not ask is neither checked nor kept
        self.typed, self.chosen = as_kept(data), name_uploads(data)
        self.data = data
        return data

    def parse(self) -> dict:
        """The answers as posted (each file chosen a `NewFile`), naming only files kept for the child."""
        data = parse_submission(self.schema, request.form, files=request.files)
        keep_known_files(self.schema, data, self.open_task.child_id)
        return data

    def keep(self, _answers: dict | None = None) -> None:
        """Store the files chosen that the answers name (after a refusal's rollback too: the answers kept
        go on naming them, so that nobody chooses a file twice)."""
        store_named(self.chosen, files_named(self.schema, self.data), self.open_task.child_id, self.uploader)
