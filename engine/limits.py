"""Bounds on what a diagram's code may do: how long it runs and how large the values it builds.

A process owner's scripts, conditions, timer and due-date expressions, loop counts, validate rules,
notification templates and instructions run on the council's server, in the web app's threads and in
the timer sweep. The restricted compiler (`scripting.py`) makes that code call in here:

- `tick()` at every loop iteration, comprehension item, `while` pass and function call, which stops
  the code once its time is up (an evaluation's own budget, and what is left of its step's);
- guarded operators and methods (`*`, `**`, `<<`, `+`, `%`, `round`, `str.join`, `str.ljust`, …)
  that refuse, before building it, a value larger than the limits, and count what each evaluation
  has built, so that a loop of large values stops too.

Nothing here can stop code inside one call into C, which is why every call that could run long in C
(a huge power, repetition or padding, `range` itself) is refused by size before it starts.

Who calls it: `scripting.py` (the guards and the evaluation budget), `runtime.py` (the step budget and
the task count of one step) and `calendar.py` (its day-counting loop ticks).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any


class LimitExceeded(Exception):
    """Diagram code went past one of its limits (`limit`: "time", "size" or "steps")."""

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit
        self.message = message


@dataclass(frozen=True)
class Limits:
    """The bounds in force; `PEP_SCRIPT_SECONDS` and `PEP_STEP_SCRIPT_SECONDS` set the time budgets."""

    evaluation_seconds: float = 1.0  # one script, expression or template
    step_seconds: float = 2.0  # all the diagram code of one step (a submission, a timer, a message)
    max_items: int = 1_000_000  # characters of a string, items of a list, tuple, set or dict
    max_int_bits: int = 100_000  # about 30,000 digits
    max_built: int = 20_000_000  # characters and items one evaluation may build in all
    max_data: int = 1_000_000  # characters and items of the task data a script leaves
    max_step_tasks: int = 5_000  # tasks one step may run without waiting for a person, timer or message
    min_cycle_seconds: int = 3600  # the shortest interval of a repeating (cycle) timer
    max_instances: int = 1_000  # instances of one multi-instance activity

    @classmethod
    def from_environment(cls) -> Limits:
        """The defaults, with the time budgets the environment sets."""
        limits = cls()
        if value := os.environ.get("PEP_SCRIPT_SECONDS"):
            limits = replace(limits, evaluation_seconds=float(value))
        if value := os.environ.get("PEP_STEP_SCRIPT_SECONDS"):
            limits = replace(limits, step_seconds=float(value))
        return limits


_limits = Limits.from_environment()


def current() -> Limits:
    """The limits in force."""
    return _limits


@contextmanager
def using(limits: Limits):
    """Run with other limits (tests, the benchmark), restoring the ones before."""
    global _limits
    before, _limits = _limits, limits
    try:
        yield limits
    finally:
        _limits = before


class _Budget(threading.local):
    """This thread's budget: the web app serves each request on a thread of its own."""

    deadline = math.inf  # when the running evaluation must stop (monotonic seconds)
    overrun = ""  # what to say when it does
    built = 0  # characters and items built by the running evaluation
    step_depth = 0  # > 0 inside a step
    step_spent = 0.0  # seconds of diagram code so far in this step
    step_tasks = 0  # tasks run so far in this step


_budget = _Budget()


@contextmanager
def step():
    """Hold one step's budget: its diagram code may run `step_seconds` in all, and it may run
    `max_step_tasks` tasks. Re-entrant: a step within a step (a message it sends) shares it."""
    b = _budget
    if b.step_depth == 0:
        b.step_spent, b.step_tasks = 0.0, 0
    b.step_depth += 1
    try:
        yield
    finally:
        b.step_depth -= 1


def task_run() -> None:
    """Count one task run by the step; refuse past `max_step_tasks` (a loop with no wait in it)."""
    b = _budget
    b.step_tasks += 1
    if b.step_tasks > _limits.max_step_tasks:
        raise LimitExceeded(
            "steps",
            f"the process ran more than {_limits.max_step_tasks:,} tasks without "
            "waiting for a person, a timer or a message: check the diagram for a loop",
        )


class _Evaluation:
    """One piece of diagram code's time and size budget (a class, not a generator: it runs at every
    evaluation, so it is kept cheap)."""

    __slots__ = ("outer", "start")

    def __enter__(self):
        b, limits = _budget, _limits
        self.start = start = time.monotonic()
        allowed = limits.evaluation_seconds
        if b.step_depth:
            allowed = min(allowed, max(0.0, limits.step_seconds - b.step_spent))
        self.outer = (b.deadline, b.overrun, b.built)
        if start + allowed < b.deadline:
            b.deadline = start + allowed
            b.overrun = (
                f"it ran longer than its limit of {limits.evaluation_seconds:g} s"
                if allowed == limits.evaluation_seconds
                else f"the diagram code of this step ran longer than its limit of {limits.step_seconds:g} s in all"
            )
        b.built = 0
        return self

    def __exit__(self, *_exc):
        b, (deadline, overrun, built) = _budget, self.outer
        nested = deadline != math.inf
        b.deadline, b.overrun = deadline, overrun
        b.built = built + b.built if nested else 0
        if b.step_depth and not nested:
            b.step_spent += time.monotonic() - self.start
        return False


def evaluation() -> _Evaluation:
    """Run one piece of diagram code within its time and size budget (`with evaluation(): ...`)."""
    return _Evaluation()


def tick() -> None:
    """Stop the running diagram code once its time is up (and at every tick after that)."""
    if time.monotonic() > _budget.deadline:
        raise LimitExceeded("time", _budget.overrun)


def ticking(iterable: Iterable) -> Iterator:
    """Iterate, ticking at every item (loops and comprehensions in diagram code)."""
    for item in iterable:
        tick()
        yield item


# ---- sizes -------------------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple, set, frozenset, dict)


def weight(value: Any, limit: int | None = None) -> int:
    """Characters and items in a value, nested values counted each time they appear (as printing or
    storing it would write them); stops counting past `limit`."""
    limit = _limits.max_items * 100 if limit is None else limit
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
    return total


def _refuse_size(what: str) -> LimitExceeded:
    return LimitExceeded("size", f"{what}, over the limit of {_limits.max_items:,}")


def _built(n: int) -> None:
    """Count what an evaluation builds; refuse once it has built more than `max_built`."""
    b = _budget
    b.built += n
    if b.built > _limits.max_built:
        raise LimitExceeded("size", f"it built more than {_limits.max_built:,} characters and items in all")


_SMALL = frozenset({bool, int, float, type(None)})


def sized(value: Any, what: str = "a value") -> Any:
    """Refuse a value (and count it as built) when it is larger than the limits."""
    if type(value) in _SMALL and (type(value) is not int or value.bit_length() <= _limits.max_int_bits):
        return value
    n = weight(value, _limits.max_items)
    if n > _limits.max_items:
        raise _refuse_size(f"{what} has more characters or items than the limit")
    _built(n)
    return value


_SCALARS = (int, float, type(None), date, datetime, timedelta)  # bool is an int


def check_data(data: dict) -> None:
    """Refuse task data that a script left too large to store, or holding what cannot be stored (a set,
    a range, a number that is not finite). One walk over the data, which every script leaves."""
    limit, total = _limits.max_data, 0
    for name, top in data.items():
        stack = [top]
        while stack:
            value = stack.pop()
            kind = type(value)
            if kind is str:
                total += len(value)
            elif kind is dict:
                total += len(value)
                stack += value.values()
            elif kind is list or kind is tuple:
                total += len(value)
                stack += value
            elif kind is float and not math.isfinite(value):
                raise ValueError(
                    f'"{name}" is a number that is not finite: process data must be text, numbers, lists or dicts'
                )
            elif isinstance(value, _SCALARS):
                total += 1
            elif isinstance(value, (str, dict, list, tuple)):  # a subclass: walked as its base
                stack.append(kind.__mro__[-2](value))
            else:
                raise ValueError(f'"{name}" is a {kind.__name__}: process data must be text, numbers, lists or dicts')
        if total > limit:
            raise LimitExceeded(
                "size", f"the task data it left is larger than the limit of {limit:,} characters and items"
            )


def _check_int(bits: int, what: str) -> None:
    if bits > _limits.max_int_bits:
        raise LimitExceeded(
            "size",
            f"{what} would be a number of about {int(bits * 0.30103):,} digits, larger "
            f"than the limit of {int(_limits.max_int_bits * 0.30103):,}",
        )


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mul(left: Any, right: Any) -> Any:
    """`left * right`, refusing a repetition or a number beyond the limits before building it."""
    if _int(left) and _int(right):
        _check_int(left.bit_length() + right.bit_length(), "a multiplication")
    else:
        seq, count = (left, right) if isinstance(left, _SIZED) else (right, left)
        if isinstance(seq, _SIZED) and _int(count) and count > 0:
            n = weight(seq, _limits.max_items) * count
            if n > _limits.max_items:
                raise _refuse_size(f"repeating a value {count:,} times would give {n:,} characters or items")
            _built(n)
    return left * right


def power(base: Any, exponent: Any, modulo: Any = None) -> Any:
    """`base ** exponent` (and `pow`), refusing a number beyond the limits before computing it."""
    if modulo is None and _int(base) and _int(exponent) and exponent > 0 and abs(base) > 1:
        _check_int(base.bit_length() * exponent, "a power")
    elif modulo is not None and _int(modulo):
        _check_int(modulo.bit_length(), "a modulus")
    return pow(base, exponent) if modulo is None else pow(base, exponent, modulo)


def lshift(left: Any, right: Any) -> Any:
    """`left << right`, refusing a number beyond the limits."""
    if _int(left) and _int(right) and left:
        _check_int(left.bit_length() + max(right, 0), "a shift")
    return left << right


def add(left: Any, right: Any) -> Any:
    """`left + right`, refusing a string or list beyond the limits before joining them."""
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
        n = len(left) + len(right)
        if n > _limits.max_items:
            raise _refuse_size(f"joining two values would give {n:,} characters or items")
        _built(n)
    return left + right


def modulo(left: Any, right: Any) -> Any:
    """`left % right`; for `%`-formatting a string, the widths and values it may pad or print are bounded."""
    if isinstance(left, str):
        _check_format_widths(left)
        sized(right, "a value formatted into a string")
        return sized(left % right, "a formatted string")
    return left % right


def _check_format_widths(template: str) -> None:
    """Refuse `%*d` and widths or precisions over 1,000 in a %-format."""
    if "%*" in template or ".*" in template:
        raise LimitExceeded("size", "a %-format with a * width is not allowed")
    digits = ""
    for char in template + " ":
        if char.isdigit():
            digits += char
            continue
        if digits and int(digits) > 1000:
            raise LimitExceeded("size", f"a %-format width or precision of {digits} is larger than the limit of 1,000")
        digits = ""


def bounded_round(number: Any, ndigits: Any = None) -> Any:
    """`round`, with at most 1,000 digits either side (a huge negative count computes 10 ** n)."""
    if ndigits is None:
        return round(number)
    if _int(ndigits) and abs(ndigits) > 1000:
        raise LimitExceeded("size", f"round to {ndigits:,} digits is beyond the limit of 1,000")
    return round(number, ndigits)


def bounded_range(*args: int) -> range:
    """`range`, of at most `max_items` numbers (sum, list and the like go over it in C, unticked)."""
    numbers = range(*args)
    if len(numbers) > _limits.max_items:
        raise _refuse_size(f"a range of {len(numbers):,} numbers")
    return numbers


def text(value: Any = "") -> str:
    """`str(value)`: refuses to print a value larger than the limits."""
    return sized(str(sized(value, "a value printed as text")), "a text")


def representation(value: Any) -> str:
    """`repr(value)`, bounded like `str`."""
    return sized(repr(sized(value, "a value printed as text")), "a text")


def total(values: Iterable, start: Any = 0) -> Any:
    """`sum` of numbers (joining lists or strings by `sum` takes quadratic time: use a loop or join)."""
    if not isinstance(start, (int, float, complex)):
        raise LimitExceeded("size", "sum adds numbers only: join strings with str.join and lists with a loop")
    return sum(ticking(values), start)


def _grown(method: Any, estimate) -> Any:
    """A value's method that refuses, before running, a result larger than the limits."""

    def guarded(*args, **kwargs):
        n = estimate(*args, **kwargs)
        if n > _limits.max_items:
            raise _refuse_size(f".{method.__name__}() would give {n:,} characters or items")
        _built(n)
        return method(*args, **kwargs)

    return guarded


def _width(width=0, *_args, **_kwargs) -> int:
    return width if _int(width) else 0


def _length_of(joined: Iterable, owner: Any) -> int:
    return sum(weight(item, _limits.max_items) + len(owner) for item in joined)


def _string_method(value: str, name: str, method: Any) -> Any:
    length = len(value)
    if name in ("ljust", "rjust", "center", "zfill"):
        return _grown(method, lambda *a, **k: max(length, _width(*a, **k)))
    if name == "expandtabs":
        return _grown(method, lambda size=8, **k: length + value.count("\t") * max(_width(size), 0))
    if name == "replace":
        return _grown(method, lambda old="", new="", *a, **k: length + (value.count(old) + (not old)) * len(new))
    if name == "join":

        def join(items):
            items = list(ticking(items))
            n = _length_of(items, value)
            if n > _limits.max_items:
                raise _refuse_size(f".join() would give {n:,} characters")
            _built(n)
            return method(items)

        return join
    return method


def _list_method(value: list, name: str, method: Any) -> Any:
    if name == "extend":

        def extend(items):
            items = list(ticking(items))
            n = len(value) + len(items)
            if n > _limits.max_items:
                raise _refuse_size(f".extend() would give a list of {n:,} items")
            _built(len(items))
            return method(items)

        return extend
    return method


DENIED_METHODS = frozenset({"translate", "maketrans", "to_bytes"})  # results no size check can bound


def guard_method(value: Any, name: str, attribute: Any) -> Any:
    """The attribute, with a size guard when it is a method that can grow a string or a list."""
    if isinstance(value, str):
        return _string_method(value, name, attribute)
    if isinstance(value, list):
        return _list_method(value, name, attribute)
    return attribute
