"""Restricted Python and sandboxed Jinja for everything a process owner writes in a diagram.

The workflow runner builds its SpiffWorkflow script engine with `make_script_engine()`, so script
tasks, gateway conditions, timer, message and multi-instance expressions all run under
RestrictedPython.  The deploy step calls `compile_script`, `compile_expression` and
`check_template` to refuse a diagram before it goes live; the web layer calls
`render_instructions` to show a user task's instructions.

Here is the RestrictedPython environment: the compiler's policy, compiling and running diagram code,
and SpiffWorkflow's script engine. What that code may call is in `allowlist`, the Jinja sandbox in
`templating`; their names that other code imports from here are re-exported.
"""

import ast
import re
import traceback
from functools import lru_cache
from types import CodeType
from typing import Any

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException

from . import limits
from .allowlist import (  # noqa: F401 - re-exported
    _BUILTINS,
    _GUARDS,
    BUILTIN_CALLABLES,
    DENIED_ATTRIBUTES,
    DENIED_NAMES,
    DOMAIN_FUNCTIONS,
    PROTECTED_NAMES,
    ScriptError,
    _not_allowed,
    guarded_getattr,
)
from .limits import LimitExceeded
from .templating import check_template, render_instructions  # noqa: F401 - re-exported

SCRIPT_FILENAME = "<string>"

_LINE_PREFIX = re.compile(r"^Line (\d+): ")


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
            ast.copy_location(ast.BoolOp(op=ast.Or(), values=[_call("_tick_", node), node.body]), node)
        )
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


def _runtime_error(err: Exception) -> ScriptError:
    """Describe an exception raised inside restricted code, with the script's line (and the limit hit)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == SCRIPT_FILENAME]
    line = frames[-1].lineno if frames else None
    if isinstance(err, LimitExceeded):
        return ScriptError(err.message, line, err.limit)
    if isinstance(err, (MemoryError, RecursionError)):
        return ScriptError(
            f"{type(err).__name__}: it needed more memory or depth than the service allows", line, "size"
        )
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
            key: value
            for key, value in scope.items()
            if not key.startswith("_")
            and key not in external_context
            and key not in self.globals
            and not callable(value)
        }
        for key in [k for k in context if not k.startswith("_") and k not in kept and k not in self._protected]:
            del context[key]
        context.update(kept)

    def check_for_overwrite(self, context, external_context):
        """Refuse task data whose keys would hide a domain function."""
        clashes = sorted(set(context) & (set(self.globals) | set(external_context)))
        if clashes:
            raise ScriptError(
                "task data overwrites predefined function(s); rename these fields or variables: " + ", ".join(clashes)
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
        raise ScriptError(
            f'the repeating timer "{value}" is more often than the limit of once every {shortest // 60} minutes',
            None,
            "time",
        )


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
