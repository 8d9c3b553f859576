"""Restricted Python and sandboxed Jinja for everything a process owner writes in a diagram.

The workflow runner builds its SpiffWorkflow script engine with `make_script_engine()`, so script
tasks, gateway conditions, timer, message and multi-instance expressions all run under
RestrictedPython.  The deploy step calls `compile_script`, `compile_expression` and
`check_template` to refuse a diagram before it goes live; the web layer calls
`render_instructions` to show a user task's instructions.
"""

import ast
import builtins
import functools
import numbers
import operator
import re
import traceback
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import CodeType
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr_raise,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException

from . import limits
from .calendar import EXPRESSION_FUNCTIONS
from .limits import LimitExceeded

SCRIPT_FILENAME = "<string>"
DOMAIN_FUNCTIONS = frozenset(EXPRESSION_FUNCTIONS)  # what diagrams call beside the built-ins (docs/modelling.md)  # the name SpiffWorkflow looks for in tracebacks

DENIED_NAMES = frozenset(
    {"compile", "globals", "locals", "vars", "getattr", "setattr", "delattr", "breakpoint", "print", "printed"}
)
DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | {
    "format", "format_map", "mro", "func_globals", "func_code", "func_closure", "cell_contents",
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame", "tb_next", "im_func", "im_self",
}

_LINE_PREFIX = re.compile(r"^Line (\d+): ")


class ScriptError(Exception):
    """A diagram's script, expression or template was refused or failed (`limit`: the limit it hit)."""

    def __init__(self, message: str, line: int | None = None, limit: str | None = None):
        super().__init__(message, line)
        self.message = message
        self.line = line
        self.limit = limit

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _call(name: str, node: ast.AST, *args: ast.expr) -> ast.Call:
    """A call of one of the guards, placed where `node` was."""
    call = ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])
    return ast.fix_missing_locations(ast.copy_location(call, node))


def _tick(node: ast.AST) -> ast.stmt:
    return ast.fix_missing_locations(ast.copy_location(ast.Expr(_call("_tick_", node)), node))


_GUARDED_OPERATORS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_"}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, tightened for process scripts, and bounded: loops, comprehensions
    and function calls tick the time budget, and the operators that can build huge values are guarded."""

    def check_name(self, node, name, allow_magic_methods=False):
        """Refuse every underscore name and the introspection builtins."""
        if name is not None and (name.startswith("_") or name in DENIED_NAMES):
            self.error(node, f'"{name}" is not allowed in a process script.')
        else:
            super().check_name(node, name, allow_magic_methods)

    def visit_Name(self, node):
        """Refuse denied names before RestrictedPython rewrites print."""
        if node.id in DENIED_NAMES:
            return self.check_name(node, node.id)
        return super().visit_Name(node)

    def visit_Attribute(self, node):
        """Refuse underscore and introspection attributes, and str.format."""
        if node.attr.startswith("_") or node.attr in DENIED_ATTRIBUTES:
            self.error(node, f'".{node.attr}" is not allowed in a process script.')
            return node
        return super().visit_Attribute(node)

    def visit_keyword(self, node):
        """Refuse underscore keyword argument names."""
        self.check_name(node, node.arg)
        return super().visit_keyword(node)

    def visit_Import(self, node):
        """Refuse import statements."""
        self.error(node, "import is not allowed in a process script.")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node):
        """Refuse class definitions."""
        self.error(node, "class definitions are not allowed in a process script.")
        return node

    def visit_BinOp(self, node):
        """`a * b`, `a ** b`, `a << b`, `a + b` and `a % b` go through the size guards."""
        node = super().visit_BinOp(node)
        guard = _GUARDED_OPERATORS.get(type(node.op))
        return _call(guard, node, node.left, node.right) if guard else node

    def visit_While(self, node):
        """Every pass of a `while` loop ticks the time budget."""
        node = super().visit_While(node)
        node.body.insert(0, _tick(node))
        return node

    def visit_FunctionDef(self, node):
        """Every call of a function ticks the time budget (recursion has no loop to tick)."""
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick(node))
        return node

    def visit_Lambda(self, node):
        """A lambda ticks too: `_tick_() or body` (the tick gives None)."""
        node = super().visit_Lambda(node)
        node.body = ast.fix_missing_locations(
            ast.copy_location(ast.BoolOp(op=ast.Or(), values=[_call("_tick_", node), node.body]), node))
        return node

    def visit_FormattedValue(self, node):
        """An f-string's value is printed within the size limits, with a constant width of at most 1,000."""
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            if any(not isinstance(part, ast.Constant) for part in parts):
                self.error(node, "an f-string format may not be computed.")
            elif any(int(n) > 1000 for part in parts for n in re.findall(r"\d+", str(part.value))):
                self.error(node, "an f-string width or precision is larger than the limit of 1,000.")
        node = super().visit_FormattedValue(node)
        node.value = _call("_sized_", node.value, node.value)
        return node

    def visit_ExceptHandler(self, node):
        """Refuse a bare `except:` or `except BaseException`: it would also catch the limits."""
        if node.type is None or (isinstance(node.type, ast.Name) and node.type.id == "BaseException"):
            self.error(node, "name the exception to catch (a bare except is not allowed).")
        return super().visit_ExceptHandler(node)


def _compile(source: str, compiler, mode: str, functions: frozenset[str]) -> CodeType:
    """Compile restricted source or raise ScriptError with the first line at fault."""
    try:
        with limits.evaluation():  # compiling folds constants: it runs under the same bounds
            refused = _not_allowed(ast.parse(source, SCRIPT_FILENAME, mode), BUILTIN_CALLABLES | functions)
            if refused:
                raise ScriptError(refused[1], refused[0])
            result = compiler(source, filename=SCRIPT_FILENAME, policy=_Policy)
    except (SyntaxError, ValueError, RecursionError, TypeError, MemoryError) as err:
        raise ScriptError(f"{type(err).__name__}: {err}", getattr(err, "lineno", None)) from err
    except LimitExceeded as err:
        raise ScriptError(err.message, None, err.limit) from err
    if result.errors:
        match = _LINE_PREFIX.match(result.errors[0])
        texts = [_LINE_PREFIX.sub("", error, count=1) for error in result.errors]
        raise ScriptError("; ".join(texts), int(match.group(1)) if match else None)
    return result.code


@lru_cache(maxsize=4096)
def compile_expression(source: str, functions: frozenset[str] = DOMAIN_FUNCTIONS) -> CodeType:
    """Compile an expression (condition, timer, payload) under RestrictedPython; it may call the
    built-ins and `functions` (by default the calendar's)."""
    return _compile(source, compile_restricted_eval, "eval", functions)


@lru_cache(maxsize=4096)
def compile_script(source: str, functions: frozenset[str] = DOMAIN_FUNCTIONS) -> CodeType:
    """Compile a script task's code under RestrictedPython (calling as `compile_expression`)."""
    return _compile(source, compile_restricted_exec, "exec", functions)


def compile_rule(source: str, functions: frozenset[str] = DOMAIN_FUNCTIONS) -> CodeType:
    """Compile a user task's `validate` rule: an expression that gives `{field: message}`, or a script
    (several lines) that puts its messages in the dict `errors`."""
    source = source.strip()
    return compile_expression(source, functions) if _is_expression(source) else compile_script(source, functions)


def _is_expression(source: str) -> bool:
    try:
        ast.parse(source, SCRIPT_FILENAME, "eval")
    except SyntaxError:
        return False
    return True


def guarded_getattr(obj: Any, name: str) -> Any:
    """Read an attribute unless it is private, introspective or str.format; a method that can grow a
    string or a list comes with its size guard."""
    if type(name) is not str or name.startswith("_") or name in DENIED_ATTRIBUTES or name in limits.DENIED_METHODS:
        raise AttributeError(f'".{name}" is not allowed in a process script')
    return limits.guard_method(obj, name, safer_getattr_raise(obj, name))


_INPLACE_OPS = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "|=": operator.ior,
    "&=": operator.iand, "^=": operator.ixor, "<<=": operator.ilshift, ">>=": operator.irshift,
}
_INPLACE_TYPES = (numbers.Number, str, list, tuple, set, dict, date, timedelta)


_GUARDED_INPLACE = {"*=": limits.mul, "**=": limits.power, "<<=": limits.lshift, "+=": limits.add, "%=": limits.modulo}


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


_EXTRA_BUILTINS = (len, min, max, sorted, reversed, any, all, abs, int, float, bool,
                   list, dict, set, tuple, enumerate, zip, isinstance, map, filter)
_UNSAFE_BUILTINS = {  # classes, attribute writes, and exceptions that would stop the worker process
    "__build_class__", "setattr", "delattr", "_getattr_", "BaseException", "SystemExit", "KeyboardInterrupt",
    "GeneratorExit", "id",
}
_BUILTINS = {
    **{k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS},
    **{f.__name__: f for f in _EXTRA_BUILTINS},
    # the ones that could run long in C or build a huge value, bounded
    "range": limits.bounded_range, "pow": limits.power, "round": limits.bounded_round, "sum": limits.total,
    "repr": limits.representation, "str": _guarded_type(str, limits.text),
    "None": None, "True": True, "False": False,
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
_PLAIN_TYPES = (str, int, float, complex, bool, list, tuple, dict, set, frozenset, date, datetime, timedelta, range, slice)
PLAIN_ATTRIBUTES = frozenset(
    name for kind in _PLAIN_TYPES for name in dir(kind)
    if not name.startswith("_") and name not in DENIED_ATTRIBUTES and name not in limits.DENIED_METHODS
)
# Python's other built-ins (open, type, getattr, vars, globals, eval, …) are refused wherever they appear.
REFUSED_NAMES = (frozenset(n for n in dir(builtins) if not n.startswith("_") and n[0].islower()) - BUILTIN_CALLABLES) | DENIED_NAMES


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
                return line, f'"{node.id}" is not allowed in a process script: only the documented functions may be used'
            if node.id in callables and node.id in bound:
                return line, f'"{node.id}" is a function of this service: give the variable another name'
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in callables and name not in bound:
                return line, f'"{name}" is not a function this service provides (see docs/modelling.md for those it does)'
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in callables and node.value.id not in bound:
                attributes.append((line, f'"{node.value.id}.{node.attr}": a function\'s attributes are not allowed'))
            elif node.attr not in PLAIN_ATTRIBUTES:
                attributes.append((line, f'".{node.attr}" is not a method of a plain value (text, number, list, dict or date)'))
    if attributes:
        return attributes[0]
    return None


def _runtime_error(err: Exception) -> ScriptError:
    """Describe an exception raised inside restricted code, with the script's line (and the limit hit)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == SCRIPT_FILENAME]
    line = frames[-1].lineno if frames else None
    if isinstance(err, LimitExceeded):
        return ScriptError(err.message, line, err.limit)
    if isinstance(err, (MemoryError, RecursionError)):
        return ScriptError(f"{type(err).__name__}: it needed more memory or depth than the service allows", line, "size")
    message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return ScriptError(message, line)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs task-data scripts under RestrictedPython."""

    def __init__(self, functions: dict[str, Any] | None = None):
        super().__init__(dict(functions or {}))
        self._base = {**self.globals, **_GUARDS}
        # names task data may not take in a script's scope: the functions and the built-ins
        self.functions = frozenset(self.globals)
        self._protected = self.functions | frozenset(_BUILTINS)

    def _scope(self, context: dict, external_context: dict | None) -> dict:
        """Build the globals for one call: builtins, functions, external context, task data (which
        never hides a built-in, a function or a guard)."""
        scope = self._base.copy()
        scope.update(external_context or {})
        scope.update(context)
        if not self._protected.isdisjoint(context):
            for name in self._protected.intersection(context):
                if name in self.globals:
                    scope[name] = self.globals[name]
                else:
                    del scope[name]
        scope.update(_GUARDS)
        return scope

    def evaluate(self, expression, context, external_context=None):
        """Return the value of an expression over task data, leaving the data unchanged."""
        code = compile_expression(expression, self.functions)
        try:
            with limits.evaluation():
                return limits.sized(eval(code, self._scope(context, external_context)), "its value")
        except SpiffWorkflowException:
            raise
        except Exception as err:
            raise _runtime_error(err) from err

    def check(self, rule: str, context: dict) -> object:
        """The messages of a `validate` rule (see `compile_rule`) over a copy of the data: a rule written
        as a script changes nothing but its own `errors`."""
        if _is_expression(rule.strip()):
            return self.evaluate(rule.strip(), context)
        scratch = {**context, "errors": {}}
        self.execute(rule, scratch)
        return scratch.get("errors")

    def execute(self, script, context, external_context=None):
        """Run a script whose top-level assignments land in the task data."""
        external_context = external_context or {}
        self.check_for_overwrite(context, external_context)
        code = compile_script(script, self.functions)
        scope = self._scope(context, external_context)
        try:
            with limits.evaluation():
                exec(code, scope)
        except SpiffWorkflowException:
            raise
        except Exception as err:
            raise _runtime_error(err) from err
        finally:
            self._store(scope, context, external_context)
        try:
            limits.check_data(context)
        except LimitExceeded as err:
            raise ScriptError(err.message, None, err.limit) from err
        except ValueError as err:
            raise ScriptError(str(err)) from err
        return True

    def _store(self, scope: dict, context: dict, external_context: dict) -> None:
        """Copy the script's data back into the task data, without functions or helpers."""
        kept = {
            key: value for key, value in scope.items()
            if not key.startswith("_") and key not in external_context
            and key not in self.globals and not callable(value)
        }
        for key in [k for k in context if not k.startswith("_") and k not in kept and k not in self._protected]:
            del context[key]
        context.update(kept)

    def check_for_overwrite(self, context, external_context):
        """Refuse task data whose keys would hide a domain function."""
        clashes = sorted(set(context) & (set(self.globals) | set(external_context)))
        if clashes:
            raise ScriptError(
                "task data overwrites predefined function(s); rename these fields or variables: "
                + ", ".join(clashes)
            )

    def call_service(self, context, **kwargs):
        """Refuse service tasks."""
        raise ScriptError("service tasks are not supported")


def check_cycle(value: Any) -> None:
    """Refuse a repeating timer (ISO 8601 `R<n>/<start>/<interval>`) shorter than the limit."""
    try:
        _cycles, _start, interval = TimerEventDefinition.parse_iso_recurring_interval(value)
    except Exception as err:  # noqa: BLE001 - any unreadable value is the diagram's error
        raise ScriptError(f'"{value}" is not a repeating interval such as R3/P1D: {err}') from err
    shortest = limits.current().min_cycle_seconds
    if interval.total_seconds() < shortest:
        raise ScriptError(f'the repeating timer "{value}" is more often than the limit of once every '
                          f"{shortest // 60} minutes", None, "time")


def _check_engine_value(spec: Any, expression: str, value: Any) -> None:
    """A cycle timer's value, and a multi-instance activity's count, within the limits."""
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, CycleTimerEventDefinition) and expression == definition.expression:
        check_cycle(value)
    if expression == getattr(spec, "cardinality", None) and isinstance(value, int):
        most = limits.current().max_instances
        if value > most:
            raise ScriptError(f"{value:,} instances of one activity are more than the limit of {most:,}", None, "size")


def _task_error(task: Any, source: str, err: ScriptError, what: str) -> WorkflowTaskException:
    """Wrap a ScriptError as SpiffWorkflow's task exception, keeping the line."""
    lines = source.splitlines()
    error_line = lines[err.line - 1] if err.line and err.line <= len(lines) else ""
    message = f"{what}: {str(err).rstrip('.')}"
    cause = err.__cause__ or err  # the original error, so SpiffWorkflow can suggest a field for a NameError
    return WorkflowTaskException(message, task=task, exception=cause, line_number=err.line, error_line=error_line)


class RestrictedScriptEngine(PythonScriptEngine):
    """PythonScriptEngine that validates with RestrictedPython and reports readable errors."""

    def validate(self, expression):
        """Refuse an expression: SyntaxError first (the DMN engine relies on it), then ScriptError."""
        ast.parse(expression)
        compile_expression(expression, self.environment.functions)

    def evaluate(self, task, expression, external_context=None):
        """Evaluate an expression over the task's data; a cycle timer's interval and a multi-instance
        count are held to their limits."""
        try:
            value = self.environment.evaluate(expression, task.data, external_context)
            _check_engine_value(getattr(task, "task_spec", None), expression, value)
            return value
        except ScriptError as err:
            raise _task_error(task, expression, err, f"Error evaluating expression '{expression}'") from err

    def create_task_exec_exception(self, task, script, err):
        """Turn a script failure into a WorkflowTaskException with the line at fault."""
        if isinstance(err, ScriptError):
            return _task_error(task, script, err, "Error in script")
        return super().create_task_exec_exception(task, script, err)

    def call_service(self, task, **kwargs):
        """Refuse service tasks with a task-level error."""
        try:
            return self.environment.call_service(task.data, **kwargs)
        except ScriptError as err:
            raise _task_error(task, "", err, "Service task") from err


def make_script_engine(functions: dict[str, Any] | None = None) -> PythonScriptEngine:
    """Return a SpiffWorkflow script engine that runs diagram code under RestrictedPython."""
    return RestrictedScriptEngine(environment=RestrictedEnvironment(functions))


class _InstructionsSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, also refusing the attributes refused in scripts, and bounded: every
    call and loop item ticks the time budget, and `*`, `**`, `+`, `%` and `//` go through the size
    guards (which also stops Jinja folding `10 ** 10 ** 10` while it compiles)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})
    _BINOPS = {"*": limits.mul, "**": limits.power, "+": limits.add, "%": limits.modulo, "//": operator.floordiv}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Refuse str.format, mro and frame walks on top of Jinja's own checks."""
        return (attr not in DENIED_ATTRIBUTES and attr not in limits.DENIED_METHODS
                and super().is_safe_attribute(obj, attr, value))

    def wrap_str_format(self, value: Any) -> None:
        """Refuse str.format rather than wrapping it, as in scripts."""
        return None

    def call_binop(self, context, operator_: str, left: Any, right: Any) -> Any:
        limits.tick()
        return self._BINOPS[operator_](left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        """Tick at every call, and guard a string's or list's growing methods as in scripts."""
        limits.tick()
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if isinstance(owner, (str, list)):
            __obj = limits.guard_method(owner, name, __obj)
        return limits.sized(super().call(__context, __obj, *args, **kwargs), "a value")


def _filter(name: str, guard=None):
    """One of Jinja's filters, run through `guard` (a size check) where it can build large values."""
    base = _JINJA.filters[name]
    return base if guard is None else functools.wraps(base)(guard(base))


def _sized_filter(base):
    return lambda *args, **kwargs: limits.sized(base(*args, **kwargs), "a filter's value")


def _format_filter(base):
    def format_(value, *args, **kwargs):
        limits.modulo(str(value), args or kwargs)  # the widths and values within the limits
        return base(value, *args, **kwargs)
    return format_


def _round_filter(base):
    def round_(value, precision=0, method="common"):
        if isinstance(precision, int) and abs(precision) > 1000:
            raise LimitExceeded("size", f"round to {precision:,} digits is beyond the limit of 1,000")
        return base(value, precision, method)
    return round_


def _replace_filter(base):
    def replace_(eval_ctx, value, old, new, count=None):
        text_ = str(value)
        limits.sized(text_)
        n = len(text_) + (text_.count(str(old)) + 1) * len(str(new))
        if n > limits.current().max_items:
            raise LimitExceeded("size", f"replace would give {n:,} characters")
        return base(eval_ctx, value, old, new, count)
    return jinja2.pass_eval_context(replace_)


_JINJA = _InstructionsSandbox(autoescape=False, undefined=ChainableUndefined, keep_trailing_newline=True)
# Filters and globals that build text of a size an argument sets (center, indent, batch, slice, lipsum),
# keep values across a loop (namespace) or are not repeatable (random) are not offered.
_JINJA.filters = {
    **{name: _filter(name) for name in (
        "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "int", "items",
        "last", "length", "lower", "max", "min", "reject", "rejectattr", "reverse", "select", "selectattr",
        "sort", "string", "striptags", "title", "trim", "truncate", "unique", "upper", "wordcount")},
    **{name: _filter(name, _sized_filter) for name in ("join", "list", "map", "sum", "tojson")},
    "round": _filter("round", _round_filter),
    "format": _filter("format", _format_filter),
    "replace": _filter("replace", _replace_filter),
}
_JINJA.globals = {"range": lambda *args: limits.bounded_range(*args), "dict": dict, "_pep_iter": limits.ticking,
                  "_pep_sized": limits.sized}


def _ukdate(value) -> str:
    """'2026-03-10' or an ISO date-time → '10 March 2026' (London), for instructions and notifications."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value)) if "T" in str(value) else date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(LONDON)
    return f"{moment.day} {moment:%B %Y}"


def _gbp(value) -> str:
    """300 or '1500.5' → '£300.00', '£1,500.50': money in instructions and notifications."""
    if value in (None, ""):
        return ""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return str(value)
    if amount != amount or amount in (float("inf"), float("-inf")):
        return str(value)
    return f"-£{-amount:,.2f}" if amount < 0 else f"£{amount:,.2f}"


_JINJA.filters["ukdate"] = _ukdate
_JINJA.filters["gbp"] = _gbp
LONDON = ZoneInfo("Europe/London")


def _bounded(tree: jinja_nodes.Template) -> jinja_nodes.Template:
    """Every loop of a template ticks at each item, and every `~` join is size-checked."""
    for loop in tree.find_all(jinja_nodes.For):
        loop.iter = jinja_nodes.Call(jinja_nodes.Name("_pep_iter", "load"), [loop.iter], [], None, None,
                                     lineno=loop.lineno)
    joins = [(parent, field) for parent in tree.find_all(jinja_nodes.Node) for field in parent.fields
             if isinstance(getattr(parent, field, None), (jinja_nodes.Concat, list))]
    for parent, field in joins:  # wrapped once all are found: the walk would find a wrapped one again
        value = getattr(parent, field)
        if isinstance(value, jinja_nodes.Concat):
            setattr(parent, field, _sized_node(value))
        else:
            value[:] = [_sized_node(v) if isinstance(v, jinja_nodes.Concat) else v for v in value]
    return tree


def _sized_node(node: jinja_nodes.Expr) -> jinja_nodes.Call:
    return jinja_nodes.Call(jinja_nodes.Name("_pep_sized", "load"), [node], [], None, None, lineno=node.lineno)


@lru_cache(maxsize=1024)
def _template(source: str):
    """Compile an instructions template in the sandbox, bounded."""
    try:
        with limits.evaluation():
            tree = _bounded(_JINJA.parse(source))
            for node in tree.find_all(jinja_nodes.Node):
                node.set_environment(_JINJA)
            return _JINJA.template_class.from_code(_JINJA, _JINJA.compile(tree), _JINJA.make_globals(None))
    except TemplateSyntaxError as err:
        raise ScriptError(err.message or str(err), err.lineno) from err
    except LimitExceeded as err:
        raise ScriptError(err.message, None, err.limit) from err
    except RecursionError as err:
        raise ScriptError("the template is nested too deeply", None, "size") from err


def check_template(template: str) -> None:
    """Refuse an instructions template that does not compile."""
    _template(template)


def render_instructions(template: str, data: dict) -> str:
    """Render a task's instructions over its data as plain text or markdown, within the limits."""
    compiled = _template(template)
    try:
        with limits.evaluation():
            size, parts = 0, []
            for part in compiled.generate(data):
                limits.tick()
                size += len(part)
                if size > limits.current().max_items:
                    raise LimitExceeded("size", f"the text is longer than the limit of {limits.current().max_items:,} characters")
                parts.append(part)
            return "".join(parts)
    except SecurityError as err:
        raise ScriptError(f"unsafe template: {err}") from err
    except LimitExceeded as err:
        raise ScriptError(err.message, None, err.limit) from err
    except Exception as err:  # a template is diagram content: any failure is the diagram's error
        raise ScriptError(str(err) if isinstance(err, TemplateError) else f"{type(err).__name__}: {err}") from err
