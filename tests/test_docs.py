"""The documentation keeps its promises: every test named in docs/processes.md exists, and the merged
file matches its fragments; every diagram property the modelling guide names is checked at deploy."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tools.merge_process_docs import merged

ROOT = Path(__file__).resolve().parent.parent


def defined_tests() -> set[str]:
    """Names of every test module and function under tests/."""
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.add(path.stem)
        tree = ast.parse(path.read_text())
        names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return names


def test_every_test_named_in_the_process_map_exists():
    named = set(re.findall(r"\b(test_[a-z0-9_]+)", (ROOT / "docs" / "processes.md").read_text()))
    missing = sorted(named - defined_tests())
    assert not missing, f"docs/processes.md names tests that do not exist: {missing}"
    assert len(named) > 100


def test_the_process_map_is_merged_from_its_fragments():
    assert (ROOT / "docs" / "processes.md").read_text() == merged(), "run: python -m tools.merge_process_docs"


def test_every_rule_row_names_an_implementation_and_a_test():
    rows = [
        line
        for line in (ROOT / "docs" / "processes.md").read_text().splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]
    rule_rows = [r for r in rows if "test_" in r or r.count("|") >= 4]
    assert rule_rows
    for row in rule_rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0].lower() in ("rule", "document", "#", "step"):
            continue
        assert all(cells), f"a rule row has an empty cell: {row}"


def test_every_test_named_in_the_security_notes_exists():
    named = set(re.findall(r"\b(test_[a-z0-9_]+)", (ROOT / "docs" / "security.md").read_text()))
    missing = sorted(named - defined_tests())
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
    assert named
