"""The engine knows nothing of the web: the CLI, the scheduler and the simulator run it without Flask.

The web app (webui) imports the engine, never the other way round.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
WEB = frozenset({"flask", "flask_login", "werkzeug", "webui"})


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative and dynamic ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level <= len(package) else ()
                module = ".".join((*base, *([node.module] if node.module else [])))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from engine import webui`, `from .. import webui`
                yield node.lineno, f"{module}.{alias.name}" if module else alias.name
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def web_imports(path: Path, root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {module}"
        for line, module in imports(path, root)
        if module.split(".")[0] in WEB
    ]


def engine_files() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_engine_module_is_checked():
    names = {p.relative_to(ROOT).as_posix() for p in engine_files()}
    assert {"engine/runtime.py", "engine/cli.py", "engine/migrations/env.py"} <= names
    assert any(n.startswith("engine/migrations/versions/") for n in names)


def test_no_engine_module_imports_the_web_layer():
    offences = [offence for path in engine_files() for offence in web_imports(path)]
    assert offences == [], "the engine must not depend on the web app:\n" + "\n".join(offences)


def test_the_check_catches_every_kind_of_web_import(tmp_path):
    module = tmp_path / "engine" / "sub" / "leaky.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import json\n"
        "import flask\n"
        "from werkzeug.security import check_password_hash\n"
        "from flask_login import current_user\n"
        "from ... import webui\n"
        "from . import helpers\n"
        "import importlib\n"
        "app = importlib.import_module('webui.app')\n",
        encoding="utf-8",
    )
    assert web_imports(module, tmp_path) == [
        "engine/sub/leaky.py:2 imports flask",
        "engine/sub/leaky.py:3 imports werkzeug.security",
        "engine/sub/leaky.py:3 imports werkzeug.security.check_password_hash",
        "engine/sub/leaky.py:4 imports flask_login",
        "engine/sub/leaky.py:4 imports flask_login.current_user",
        "engine/sub/leaky.py:5 imports webui",
        "engine/sub/leaky.py:8 imports webui.app",
    ]


@pytest.mark.parametrize("module", ["engine.runtime", "engine.cli", "engine.timers"])
def test_importing_the_engine_does_not_load_flask(module):
    code = (
        f"import sys, {module}\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(WEB)!r})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"importing {module} loaded: {proc.stdout.strip()}"


def module_imports(path: Path) -> set[str]:
    """The engine modules a module imports as it loads: at its top level, not for type checking only
    (`if TYPE_CHECKING:`) and not inside a function (an import made when called)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(inner, ast.ImportFrom) and inner.level == 1:
                names = [inner.module] if inner.module else [a.name for a in inner.names]
                found |= {f"engine.{name.split('.')[0]}" for name in names}
            elif isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("engine"):
                parts = (inner.module or "").split(".")
                found |= {f"engine.{parts[1]}"} if len(parts) > 1 else {f"engine.{a.name}" for a in inner.names}
            elif isinstance(inner, ast.Import):
                found |= {".".join(a.name.split(".")[:2]) for a in inner.names if a.name.startswith("engine.")}
    return found


def test_the_engines_modules_import_each_other_without_a_circle():
    """Each module can be read on its own: none needs, as it loads, a module that needs it back."""
    graph = {
        f"engine.{p.stem}": module_imports(p) - {f"engine.{p.stem}"}
        for p in ENGINE.glob("*.py")
        if p.stem != "__init__"
    }
    graph = {module: {m for m in needs if m in graph} for module, needs in graph.items()}
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for needed in sorted(graph[module]):
            if state.get(needed) == "open":
                circles.append(" → ".join([*path[path.index(needed) :], needed]))
            elif needed not in state:
                visit(needed, [*path, needed])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_no_engine_module_is_longer_than_450_lines():
    """One concern a module: a module past 450 lines holds more than one (engine/README.md's table)."""
    long = {p.name: n for p in ENGINE.glob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}
