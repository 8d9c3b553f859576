"""What diagram code may call and read: the built-ins offered (the ones that could run long or build
a huge value bounded by `limits`), the calendar functions, and the methods and attributes of plain
values; the guards RestrictedPython's compiled code calls; the names no task data may take
(`PROTECTED_NAMES`); `_not_allowed`, which finds a use of anything else, so deploy refuses it; and
`ScriptError`, what a refused or failing script, expression or template raises.
"""

import ast
import builtins
import numbers
import operator
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr_raise,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from . import limits
from .calendar import EXPRESSION_FUNCTIONS

DOMAIN_FUNCTIONS = frozenset(
    EXPRESSION_FUNCTIONS
)  # what diagrams call beside the built-ins (docs/modelling.md)  # the name SpiffWorkflow looks for in tracebacks


DENIED_NAMES = frozenset(
    {"compile", "globals", "locals", "vars", "getattr", "setattr", "delattr", "breakpoint", "print", "printed"}
)


DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | {
    "format",
    "format_map",
    "mro",
    "func_globals",
    "func_code",
    "func_closure",
    "cell_contents",
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "cr_frame",
    "cr_code",
    "cr_await",
    "ag_frame",
    "ag_code",
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "f_code",
    "tb_frame",
    "tb_next",
    "im_func",
    "im_self",
}


class ScriptError(Exception):
    """A diagram's script, expression or template was refused or failed (`limit`: the limit it hit)."""

    def __init__(self, message: str, line: int | None = None, limit: str | None = None):
        super().__init__(message, line)
        self.message = message
        self.line = line
        self.limit = limit

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def guarded_getattr(obj: Any, name: str) -> Any:
    """Read an attribute unless it is private, introspective or str.format; a method that can grow a
    string or a list comes with its size guard."""
    if type(name) is not str or name.startswith("_") or name in DENIED_ATTRIBUTES or name in limits.DENIED_METHODS:
        raise AttributeError(f'".{name}" is not allowed in a process script')
    return limits.guard_method(obj, name, safer_getattr_raise(obj, name))


_INPLACE_OPS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "|=": operator.ior,
    "&=": operator.iand,
    "^=": operator.ixor,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
}


_INPLACE_TYPES = (numbers.Number, str, list, tuple, set, dict, date, timedelta)


_GUARDED_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "*=": limits.mul,
    "**=": limits.power,
    "<<=": limits.lshift,
    "+=": limits.add,
    "%=": limits.modulo,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """Apply an augmented assignment (x += 1) to plain data only, within the size limits."""
    if op not in _INPLACE_OPS or not isinstance(target, _INPLACE_TYPES):
        raise TypeError(f"{op} is not supported for {type(target).__name__}")
    if op in _GUARDED_INPLACE:
        if op == "+=" and isinstance(target, list):
            limits.add(target, list(value) if not isinstance(value, list) else value)  # the size check
            target += value
            return target
        return _GUARDED_INPLACE[op](target, value)
    return _INPLACE_OPS[op](target, value)


def _apply(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call func with unpacked arguments (f(*args, **kwargs))."""
    return func(*args, **kwargs)


class _GuardedType(type):
    """A stand-in for a built-in type whose calls are bounded: `str(x)` is `limits.text(x)`, while
    `isinstance(x, str)` and `str.upper` work as on the type itself."""

    def __call__(cls, *args, **kwargs):
        return cls.make(*args, **kwargs)

    def __instancecheck__(cls, instance):
        return isinstance(instance, cls.wraps)

    def __subclasscheck__(cls, subclass):
        return issubclass(subclass, cls.wraps)

    def __getattr__(cls, name):
        return getattr(cls.wraps, name)


def _guarded_type(wraps: type, make) -> type:
    return _GuardedType(wraps.__name__, (), {"wraps": wraps, "make": staticmethod(make)})


_EXTRA_BUILTINS = (
    len,
    min,
    max,
    sorted,
    reversed,
    any,
    all,
    abs,
    int,
    float,
    bool,
    list,
    dict,
    set,
    tuple,
    enumerate,
    zip,
    isinstance,
    map,
    filter,
)


_UNSAFE_BUILTINS = {  # classes, attribute writes, and exceptions that would stop the worker process
    "__build_class__",
    "setattr",
    "delattr",
    "_getattr_",
    "BaseException",
    "SystemExit",
    "KeyboardInterrupt",
    "GeneratorExit",
    "id",
}


_BUILTINS = {
    **{k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS},
    **{f.__name__: f for f in _EXTRA_BUILTINS},
    # the ones that could run long in C or build a huge value, bounded
    "range": limits.bounded_range,
    "pow": limits.power,
    "round": limits.bounded_round,
    "sum": limits.total,
    "repr": limits.representation,
    "str": _guarded_type(str, limits.text),
    "None": None,
    "True": True,
    "False": False,
}


_GUARDS = {
    "__builtins__": _BUILTINS,
    "_getattr_": guarded_getattr,
    "_getitem_": operator.getitem,
    "_getiter_": limits.ticking,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_apply_": _apply,
    "_tick_": limits.tick,
    "_sized_": limits.sized,
    "_mul_": limits.mul,
    "_pow_": limits.power,
    "_lshift_": limits.lshift,
    "_add_": limits.add,
    "_mod_": limits.modulo,
}


# What diagram code may call and read: the built-ins above, the calendar functions, and the methods and
# attributes of plain values (text, numbers, lists, dicts, sets, dates). Everything else is refused at deploy.
BUILTIN_CALLABLES = frozenset(k for k, v in _BUILTINS.items() if callable(v))


PROTECTED_NAMES = BUILTIN_CALLABLES | DOMAIN_FUNCTIONS  # no task data or variable may take these names


_PLAIN_TYPES = (
    str,
    int,
    float,
    complex,
    bool,
    list,
    tuple,
    dict,
    set,
    frozenset,
    date,
    datetime,
    timedelta,
    range,
    slice,
)


PLAIN_ATTRIBUTES = frozenset(
    name
    for kind in _PLAIN_TYPES
    for name in dir(kind)
    if not name.startswith("_") and name not in DENIED_ATTRIBUTES and name not in limits.DENIED_METHODS
)


# Python's other built-ins (open, type, getattr, vars, globals, eval, …) are refused wherever they appear.
REFUSED_NAMES = (
    frozenset(n for n in dir(builtins) if not n.startswith("_") and n[0].islower()) - BUILTIN_CALLABLES
) | DENIED_NAMES


def _not_allowed(tree: ast.AST, callables: frozenset[str]) -> tuple[int | None, str] | None:
    """The first use of a name, call or attribute that diagram code may not make: (line, message)."""
    bound = set()  # names the code itself assigns: its variables, functions and parameters
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    attributes = []  # reported after the names: "open" says more than ".read" of open(...).read()
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Name):
            if node.id in REFUSED_NAMES:
                return (
                    line,
                    f'"{node.id}" is not allowed in a process script: only the documented functions may be used',
                )
            if node.id in callables and node.id in bound:
                return line, f'"{node.id}" is a function of this service: give the variable another name'
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in callables and name not in bound:
                return (
                    line,
                    f'"{name}" is not a function this service provides (see docs/modelling.md for those it does)',
                )
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in callables and node.value.id not in bound:
                attributes.append((line, f'"{node.value.id}.{node.attr}": a function\'s attributes are not allowed'))
            elif node.attr not in PLAIN_ATTRIBUTES:
                attributes.append(
                    (line, f'".{node.attr}" is not a method of a plain value (text, number, list, dict or date)')
                )
    if attributes:
        return attributes[0]
    return None
