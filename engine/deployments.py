"""The deployed versions as the rest of the app reads them: the newest one, the process a start
takes, the processes a message starts, and a version's forms.

A deployment never changes once stored (engine/deploy.py), so what is read of it may be kept for the
life of the process (`Forms`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, lazyload

from .errors import NotFound
from .models import Deployment, ProcessDefinition
from .statements import LEAN_DEFINITION

NEWEST_VERSION = select(func.max(Deployment.version)).scalar_subquery()


def newest_deployment(session: Session) -> Deployment | None:
    """The newest deployed version (None before the first `pep deploy`)."""
    return session.scalar(select(Deployment).order_by(Deployment.version.desc()).limit(1))


def latest_definition(session: Session, process_id: str) -> ProcessDefinition:
    """The process in the newest deployment; a process that a later version retired starts no more."""
    definition = session.scalar(
        select(ProcessDefinition)
        .join(Deployment)
        .where(ProcessDefinition.process_id == process_id, Deployment.version == NEWEST_VERSION)
    )
    if definition is None:
        last = session.scalar(
            select(func.max(Deployment.version))
            .join(ProcessDefinition)
            .where(ProcessDefinition.process_id == process_id)
        )
        if last is None:
            raise NotFound(f'no deployed process "{process_id}" (run `pep deploy` first)')
        raise NotFound(f'process "{process_id}" was retired in version {last + 1}: it can no longer be started')
    return definition


def newest_definitions(session: Session) -> list[ProcessDefinition]:
    """Every process of the newest deployment (with its spec)."""
    return list(
        session.scalars(
            select(ProcessDefinition)
            .join(Deployment)
            .where(Deployment.version == NEWEST_VERSION)
            .options(lazyload(ProcessDefinition.deployment))
        )
    )


def started_by(session: Session, message: str) -> list[ProcessDefinition]:
    """The processes of the newest deployment whose start event waits for this message."""
    starts: Sequence[tuple[int, list[str] | None]] = (
        session.execute(  # the start messages only: a definition's spec is read when it runs
            select(ProcessDefinition.id, ProcessDefinition.start_messages)
            .join(Deployment)
            .where(Deployment.version == NEWEST_VERSION)
            .order_by(ProcessDefinition.id)
        ).all()
    )
    found = (
        session.get(ProcessDefinition, id_, options=[defer(ProcessDefinition.spec), *LEAN_DEFINITION])
        for id_, messages in starts
        if message in (messages or [])
    )
    return [definition for definition in found if definition is not None]  # None: deleted since it was read


def form_schema(deployment: Deployment | None, form: str | None) -> dict | None:
    """A form of a deployed version as a dict (None when the version has no such form)."""
    file = deployment.file(f"forms/{form}") if deployment is not None and form else None
    return json.loads(file.content) if file is not None else None


def message_form(deployment: Deployment | None, message: str | None) -> dict | None:
    """The form of a message (a reported change) in a deployed version: forms/message_<name>.schema.json."""
    return form_schema(deployment, f"message_{message}.schema.json") if message else None


class Forms:
    """The forms of deployed versions, each read once: its source (what the engine validates against
    and digests) and its schema."""

    def __init__(self) -> None:
        self._sources: dict[tuple[int, str], str] = {}
        self._schemas: dict[tuple[int, str], dict] = {}

    def source(self, definition: ProcessDefinition, form: str) -> str:
        key = (definition.deployment_id, form)
        if key not in self._sources:
            deployment = definition.deployment
            file = deployment.file(f"forms/{form}")
            if file is None:
                raise NotFound(f"form {form} is missing from deployment {deployment.version}")
            self._sources[key] = file.content
        return self._sources[key]

    def schema(self, definition: ProcessDefinition, form: str) -> dict:
        key = (definition.deployment_id, form)
        if key not in self._schemas:
            self._schemas[key] = json.loads(self.source(definition, form))
        return self._schemas[key]


class Specs:
    """The parsed specs (and sub-process specs) of deployed definitions, the most recently used kept."""

    def __init__(self, serializer, size: int = 64) -> None:
        self.serializer, self.size = serializer, size
        self._specs: OrderedDict[int, tuple] = OrderedDict()

    def get(self, definition: ProcessDefinition) -> tuple:
        cached = self._specs.get(definition.id)
        if cached is None:
            cached = self.serializer.spec_from_dict(definition.spec)
            self._specs[definition.id] = cached
            while len(self._specs) > self.size:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(definition.id)
        return cached
