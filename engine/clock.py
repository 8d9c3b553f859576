"""One injectable clock for the engine, the calendar functions and SpiffWorkflow's timers.

The engine activates its clock around every operation (`using(clock)`); SpiffWorkflow's timer
module reads the active clock through `install_spiff_clock()`, so a test or the simulator that
moves a `FrozenClock` moves every deadline with it.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class SystemClock:
    """The real time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until it is set or advanced: for tests and simulations."""

    def __init__(self, start: datetime | str):
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime | str) -> None:
        self._now = _aware(when)

    def advance(self, **delta: float) -> datetime:
        """Move time forward by a timedelta given as keywords (days=3, hours=2)."""
        self._now += timedelta(**delta)
        return self._now


_SYSTEM = SystemClock()
_active: contextvars.ContextVar[SystemClock | FrozenClock | None] = contextvars.ContextVar("pep_clock", default=None)


def now() -> datetime:
    """The active clock's time."""
    return (_active.get() or _SYSTEM).now()


def active() -> SystemClock | FrozenClock | None:
    """The clock of the enclosing `using` block, if any."""
    return _active.get()


@contextmanager
def using(clock):
    """Make `clock` the active clock for the duration of the block."""
    token = _active.set(clock)
    try:
        yield clock
    finally:
        _active.reset(token)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError(f"clock times must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


class _ClockedDatetime(datetime):
    """`datetime` whose now() reads the active clock; swapped into SpiffWorkflow's timer module."""

    @classmethod
    def now(cls, tz=None):
        current = now()
        return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)


def install_spiff_clock() -> None:
    """Make SpiffWorkflow's timer events read the active clock (idempotent)."""
    from SpiffWorkflow.bpmn.specs.event_definitions import timer

    timer.datetime = _ClockedDatetime
