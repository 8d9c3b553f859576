"""The Jinja sandbox for instructions and notifications: an immutable sandbox whose filters and globals
are the bounded ones (every loop ticks, every join is size-checked), with `ukdate` and `gbp`;
`check_template` refuses a template at deploy, `render_instructions` renders one over task data.
"""

import functools
import operator
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from . import limits
from .allowlist import DENIED_ATTRIBUTES, ScriptError
from .limits import LimitExceeded


class _InstructionsSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, also refusing the attributes refused in scripts, and bounded: every
    call and loop item ticks the time budget, and `*`, `**`, `+`, `%` and `//` go through the size
    guards (which also stops Jinja folding `10 ** 10 ** 10` while it compiles)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})
    _BINOPS = {"*": limits.mul, "**": limits.power, "+": limits.add, "%": limits.modulo, "//": operator.floordiv}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Refuse str.format, mro and frame walks on top of Jinja's own checks."""
        return (
            attr not in DENIED_ATTRIBUTES
            and attr not in limits.DENIED_METHODS
            and super().is_safe_attribute(obj, attr, value)
        )

    def wrap_str_format(self, value: Any) -> None:
        """Refuse str.format rather than wrapping it, as in scripts."""
        return None

    def call_binop(self, context, operator_: str, left: Any, right: Any) -> Any:
        limits.tick()
        return self._BINOPS[operator_](left, right)  # type: ignore[operator] # Jinja's table, untyped

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
    **{
        name: _filter(name)
        for name in (
            "abs",
            "capitalize",
            "count",
            "d",
            "default",
            "dictsort",
            "e",
            "escape",
            "first",
            "float",
            "int",
            "items",
            "last",
            "length",
            "lower",
            "max",
            "min",
            "reject",
            "rejectattr",
            "reverse",
            "select",
            "selectattr",
            "sort",
            "string",
            "striptags",
            "title",
            "trim",
            "truncate",
            "unique",
            "upper",
            "wordcount",
        )
    },
    **{name: _filter(name, _sized_filter) for name in ("join", "list", "map", "sum", "tojson")},
    "round": _filter("round", _round_filter),
    "format": _filter("format", _format_filter),
    "replace": _filter("replace", _replace_filter),
}
_JINJA.globals = {
    "range": lambda *args: limits.bounded_range(*args),
    "dict": dict,
    "_pep_iter": limits.ticking,
    "_pep_sized": limits.sized,
}


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
        loop.iter = jinja_nodes.Call(
            jinja_nodes.Name("_pep_iter", "load"), [loop.iter], [], None, None, lineno=loop.lineno
        )
    joins = [
        (parent, field)
        for parent in tree.find_all(jinja_nodes.Node)
        for field in parent.fields
        if isinstance(getattr(parent, field, None), (jinja_nodes.Concat, list))
    ]
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
                    raise LimitExceeded(
                        "size", f"the text is longer than the limit of {limits.current().max_items:,} characters"
                    )
                parts.append(part)
            return "".join(parts)
    except SecurityError as err:
        raise ScriptError(f"unsafe template: {err}") from err
    except LimitExceeded as err:
        raise ScriptError(err.message, None, err.limit) from err
    except Exception as err:  # a template is diagram content: any failure is the diagram's error
        raise ScriptError(str(err) if isinstance(err, TemplateError) else f"{type(err).__name__}: {err}") from err
