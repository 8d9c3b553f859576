"""Restricted Python and sandboxed Jinja for everything a process owner writes in a diagram.

The workflow runner builds its SpiffWorkflow script engine with `make_script_engine()`, so script
tasks, gateway conditions, timer, message and multi-instance expressions all run under
RestrictedPython.  The deploy step calls `compile_script`, `compile_expression` and
`check_template` to refuse a diagram before it goes live; the web layer calls
`render_instructions` to show a user task's instructions.
"""

import ast
import numbers
import operator
import re
import traceback
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import CodeType
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
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
from SpiffWorkflow.exceptions import SpiffWorkflowException

SCRIPT_FILENAME = "<string>"  # the name SpiffWorkflow looks for in tracebacks

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
    """A diagram's script, expression or template was refused or failed."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message, line)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, tightened for process scripts."""

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


def _compile(source: str, compiler) -> CodeType:
    """Compile restricted source or raise ScriptError with the first line at fault."""
    try:
        result = compiler(source, filename=SCRIPT_FILENAME, policy=_Policy)
    except (SyntaxError, ValueError, RecursionError, TypeError) as err:
        raise ScriptError(f"{type(err).__name__}: {err}", getattr(err, "lineno", None)) from err
    if result.errors:
        match = _LINE_PREFIX.match(result.errors[0])
        texts = [_LINE_PREFIX.sub("", error, count=1) for error in result.errors]
        raise ScriptError("; ".join(texts), int(match.group(1)) if match else None)
    return result.code


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> CodeType:
    """Compile an expression (condition, timer, payload) under RestrictedPython."""
    return _compile(source, compile_restricted_eval)


@lru_cache(maxsize=4096)
def compile_script(source: str) -> CodeType:
    """Compile a script task's code under RestrictedPython."""
    return _compile(source, compile_restricted_exec)


def guarded_getattr(obj: Any, name: str) -> Any:
    """Read an attribute unless it is private, introspective or str.format."""
    if type(name) is not str or name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise AttributeError(f'".{name}" is not allowed in a process script')
    return safer_getattr_raise(obj, name)


_INPLACE_OPS = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "|=": operator.ior,
    "&=": operator.iand, "^=": operator.ixor, "<<=": operator.ilshift, ">>=": operator.irshift,
}
_INPLACE_TYPES = (numbers.Number, str, list, tuple, set, dict, date, timedelta)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """Apply an augmented assignment (x += 1) to plain data only."""
    if op not in _INPLACE_OPS or not isinstance(target, _INPLACE_TYPES):
        raise TypeError(f"{op} is not supported for {type(target).__name__}")
    return _INPLACE_OPS[op](target, value)


def _apply(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call func with unpacked arguments (f(*args, **kwargs))."""
    return func(*args, **kwargs)


_EXTRA_BUILTINS = (len, min, max, sum, sorted, reversed, any, all, abs, round, int, float, str, bool,
                   list, dict, set, tuple, range, enumerate, zip, isinstance, map, filter)
_UNSAFE_BUILTINS = {  # classes, attribute writes, and exceptions that would stop the worker process
    "__build_class__", "setattr", "delattr", "_getattr_", "BaseException", "SystemExit", "KeyboardInterrupt",
    "GeneratorExit",
}
_BUILTINS = {
    **{k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS},
    **{f.__name__: f for f in _EXTRA_BUILTINS},
    "None": None, "True": True, "False": False,
}
_GUARDS = {
    "__builtins__": _BUILTINS,
    "_getattr_": guarded_getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_apply_": _apply,
}


def _runtime_error(err: Exception) -> ScriptError:
    """Describe an exception raised inside restricted code, with the script's line."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == SCRIPT_FILENAME]
    message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return ScriptError(message, frames[-1].lineno if frames else None)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs task-data scripts under RestrictedPython."""

    def __init__(self, functions: dict[str, Any] | None = None):
        super().__init__(dict(functions or {}))
        self._base = {**self.globals, **_GUARDS}

    def _scope(self, context: dict, external_context: dict | None) -> dict:
        """Build the globals for one call: builtins, functions, external context, task data."""
        scope = self._base.copy()
        scope.update(external_context or {})
        scope.update(context)
        scope.update(_GUARDS)  # task data must never replace a guard
        return scope

    def evaluate(self, expression, context, external_context=None):
        """Return the value of an expression over task data, leaving the data unchanged."""
        code = compile_expression(expression)
        try:
            return eval(code, self._scope(context, external_context))
        except SpiffWorkflowException:
            raise
        except Exception as err:
            raise _runtime_error(err) from err

    def execute(self, script, context, external_context=None):
        """Run a script whose top-level assignments land in the task data."""
        external_context = external_context or {}
        self.check_for_overwrite(context, external_context)
        code = compile_script(script)
        scope = self._scope(context, external_context)
        try:
            exec(code, scope)
        except SpiffWorkflowException:
            raise
        except Exception as err:
            raise _runtime_error(err) from err
        finally:
            self._store(scope, context, external_context)
        return True

    def _store(self, scope: dict, context: dict, external_context: dict) -> None:
        """Copy the script's data back into the task data, without functions or helpers."""
        kept = {
            key: value for key, value in scope.items()
            if not key.startswith("_") and key not in external_context
            and key not in self.globals and not callable(value)
        }
        for key in [k for k in context if not k.startswith("_") and k not in kept]:
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
        compile_expression(expression)

    def evaluate(self, task, expression, external_context=None):
        """Evaluate an expression over the task's data."""
        try:
            return self.environment.evaluate(expression, task.data, external_context)
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
    """Jinja's immutable sandbox, also refusing the attributes refused in scripts."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Refuse str.format, mro and frame walks on top of Jinja's own checks."""
        return attr not in DENIED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        """Refuse str.format rather than wrapping it, as in scripts."""
        return None


_JINJA = _InstructionsSandbox(autoescape=False, undefined=ChainableUndefined, keep_trailing_newline=True)


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


_JINJA.filters["ukdate"] = _ukdate
LONDON = ZoneInfo("Europe/London")


@lru_cache(maxsize=1024)
def _template(source: str):
    """Compile an instructions template in the sandbox."""
    try:
        return _JINJA.from_string(source)
    except TemplateSyntaxError as err:
        raise ScriptError(err.message or str(err), err.lineno) from err


def check_template(template: str) -> None:
    """Refuse an instructions template that does not compile."""
    _template(template)


def render_instructions(template: str, data: dict) -> str:
    """Render a task's instructions over its data as plain text or markdown."""
    compiled = _template(template)
    try:
        return compiled.render(data)
    except SecurityError as err:
        raise ScriptError(f"unsafe template: {err}") from err
    except Exception as err:  # a template is diagram content: any failure is the diagram's error
        raise ScriptError(str(err) if isinstance(err, TemplateError) else f"{type(err).__name__}: {err}") from err
