"""A form's `pattern` matched by RE2, in time linear in the answer: a JSON Schema (ECMA-262) pattern in
RE2's syntax, and what deploy refuses (`pattern_problems`: backreferences, look-around, what RE2
cannot compile), with jsonschema-rs's bounded matcher for what RE2 cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import jsonschema_rs
import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a pattern it cannot compile is reported by pattern_problems, not logged
# ECMA-262's \s, which JSON Schema patterns (and jsonschema-rs) use: RE2's is ASCII only
_ECMA_SPACE = r"\t\n\x0B\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}"
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_EXPONENTIAL = re.compile(r"invalid escape sequence: \\[1-9k]|invalid perl operator: \(\?<?[=!]")


def _re2_syntax(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern in RE2's syntax: `\\uXXXX` escapes and ECMA's `\\s`."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            code = pattern[i + 1]
            if code == "u" and _HEX4.fullmatch(pattern, i + 2, i + 6):
                out.append(rf"\x{{{pattern[i + 2 : i + 6]}}}")
                i += 6
                continue
            if code == "s":
                out.append(_ECMA_SPACE if in_class else f"[{_ECMA_SPACE}]")
            elif code == "S" and not in_class:
                out.append(f"[^{_ECMA_SPACE}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            start = i + 2 if pattern.startswith("[^", i) else i + 1
            if pattern.startswith("]", start):  # RE2 reads a leading ] as the character
                out.append(pattern[i : start + 1])
                i = start + 1
                continue
        elif char == "[" and pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) != -1:
            out.append(pattern[i : end + 2])  # a POSIX class, [:alpha:]
            i = end + 2
            continue
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def _re2(pattern: str):
    """The pattern compiled by RE2, or its reason for refusing it."""
    try:
        return re2.compile(_re2_syntax(pattern), _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not a pattern"
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


@lru_cache(maxsize=256)
def _bounded(pattern: str) -> jsonschema_rs.Validator | None:
    """fancy-regex's matcher (bounded backtracking) for a pattern RE2 refuses, or None."""
    try:
        return jsonschema_rs.validator_for({"pattern": pattern})
    except (ValueError, jsonschema_rs.ValidationError):
        return None


def matches_pattern(pattern: str, text: str) -> bool:
    compiled = _re2(pattern)
    try:
        if not isinstance(compiled, str):
            return compiled.search(text) is not None
        # Only in a form deployed before patterns were checked: fancy-regex gives up (no match) in bounded time
        bounded = _bounded(pattern)
        return bounded is not None and bounded.is_valid(text)
    except (UnicodeError, ValueError):  # a lone surrogate: not text either engine reads
        return False


def pattern_problem(pattern: str) -> str | None:
    """Why this service refuses a form's pattern (None when RE2 matches it, in linear time)."""
    reason = _re2(pattern)
    if not isinstance(reason, str):
        return None
    if _EXPONENTIAL.search(reason) or (reason.startswith("invalid perl operator: (?P") and "(?P=" in pattern):
        return (
            f'pattern "{pattern}" uses a backreference or look-around, which this service does not accept: '
            "it could take exponential time"
        )
    return f'pattern "{pattern}" is not one this service can check safely ({reason})'


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = (
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)


def pattern_problems(schema, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(JSON path, problem) of every `pattern` and `patternProperties` pattern in a schema that this service
    refuses, in nested properties, list items, $defs and the other subschemas too."""
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("pattern"), str) and (problem := pattern_problem(schema["pattern"])):
        yield "/".join((*path, "pattern")), problem
    if isinstance(schema.get("patternProperties"), dict):
        for pattern in schema["patternProperties"]:
            if problem := pattern_problem(pattern):
                yield "/".join((*path, "patternProperties", pattern)), problem
    for keyword in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(keyword), dict):
            for name, subschema in schema[keyword].items():
                yield from pattern_problems(subschema, (*path, keyword, name))
    for keyword in _SUBSCHEMA_LISTS + _SUBSCHEMAS:
        value = schema.get(keyword)
        if isinstance(value, list):
            for index, subschema in enumerate(value):
                yield from pattern_problems(subschema, (*path, keyword, str(index)))
        else:
            yield from pattern_problems(value, (*path, keyword))
