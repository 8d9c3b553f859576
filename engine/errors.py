"""What the engine refuses and what fails: one root (`EngineError`) that the CLI and the web app map
once, each subclass meaning one thing to the person who asked (not found, not allowed, no longer
ready, changed meanwhile, answers invalid) or to the Virtual School (`ProcessFault`: the diagram could
not run the step)."""

from __future__ import annotations

from . import limits
from .scripting import ScriptError


class EngineError(Exception):
    """A request the engine refuses; the message is meant for the person who made it."""


class NotFound(EngineError):
    pass


class NotAllowed(EngineError):
    pass


class TaskNotReady(EngineError):
    pass


class Conflict(EngineError):
    """Someone else changed this PEP at the same moment: reload and try again."""


class Raced(Conflict):
    """Another step of this PEP was written between this step's read and its write (SQLite, which has
    no row locks). Nothing of the step was written, and the refused write holds the database's write
    lock: `complete_task` takes the step once more from the PEP as it now stands."""


class ProcessFault(EngineError):
    """The diagram could not run this step: its own code failed or went past one of its limits. Nothing
    of the step is applied (the caller rolls back), the caller records it (`Engine.record_incident`),
    and the person is told plainly (`PLAIN`); the owner reads what happened in the incident."""

    PLAIN = "This step could not run; the Virtual School has been told."

    instance_id: int | None = None  # the instance whose step failed, when it was stored before the step
    child_id: str | None = None

    def __init__(self, process_id: str | None, element_id: str | None, cause: str, limit: str | None = None):
        self.process_id, self.element_id, self.cause, self.limit = process_id, element_id, cause, limit
        where = f"process {process_id or '?'}, element {element_id or '?'}"
        what = f"{limit} limit" if limit else "error"
        super().__init__(f"{where}: {what}: {cause}")


def diagram_failure(exc: BaseException, process_id: str | None, element_id: str | None = None) -> EngineError:
    """What a failure of a diagram's code means: an `assert` in a script is the diagram refusing the
    answers (said to the person as it is written); anything else is a fault of the diagram."""
    if isinstance(exc, EngineError):
        return exc
    limit = None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AssertionError):
            return EngineError(str(seen) or "the answers were refused by a check in the process")
        if isinstance(seen, (ScriptError, limits.LimitExceeded)) and seen.limit:
            limit = seen.limit
        task_spec = getattr(getattr(seen, "task", None), "task_spec", None)
        if element_id is None and task_spec is not None:
            element_id = task_spec.bpmn_id or task_spec.name
        seen = seen.__cause__ or seen.__context__
    return ProcessFault(process_id, element_id, describe(exc), limit)


class FormInvalid(EngineError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("the form has errors: " + "; ".join(errors.values()))


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]
