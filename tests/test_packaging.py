"""The app runs from an installed wheel, away from a checkout: the configuration it starts from, its
migrations, templates and built front end all ship with the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, unpacked as pip installs it (its packages at the top)."""
    if not (ROOT / "webui" / "static" / "build" / "app.css").exists():
        pytest.skip("the front end is not built (make assets)")
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy, so that no build left in the checkout is packaged, nor one left there
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "node_modules",
            "instance",
            "build",
            "docs",
            "tests",
            "benchmarks",
            "__pycache__",
            "*.egg-info",
            ".hypothesis",
            ".pytest_cache",
            ".ruff_cache",
            ".mypy_cache",
        ),
    )
    shutil.copytree(ROOT / "webui" / "static" / "build", source / "webui" / "static" / "build", dirs_exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        cwd=out,
        capture_output=True,
    )
    [wheel] = out.glob("pep_process-*.whl")
    site = out / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def run(site: Path, where: Path, *code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "PEP_DATABASE_URL": f"sqlite:///{where / 'pep.sqlite'}"}
    env.pop("PEP_TEST_DATABASE_URL", None)
    return subprocess.run([sys.executable, *code], cwd=where, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_the_configuration_migrations_templates_and_built_front_end(installed):
    assert {p.name for p in (installed / "engine" / "config").iterdir()} >= {
        "roles.yaml",
        "term_dates.yaml",
        "statutory.yaml",
        "overdue.yaml",
        "ppplus.yaml",
    }
    assert (installed / "engine" / "migrations" / "env.py").exists()
    assert (installed / "webui" / "templates" / "base.html").exists()
    assert (installed / "webui" / "static" / "build" / "app.css").exists()
    assert list((installed / "webui" / "static" / "build" / "js").glob("*.js"))
    assert (installed / "webui" / "static" / "vendor" / "govuk" / "govuk-frontend.min.js").exists()


def test_a_council_sets_up_deploys_and_serves_pages_from_the_installed_package(installed, tmp_path):
    setup = run(installed, tmp_path, "-m", "engine.cli", "init")
    assert setup.returncode == 0, setup.stderr
    deployed = run(installed, tmp_path, "-m", "engine.cli", "deploy", "--as", "setup@example.test", str(ROOT))
    assert deployed.returncode == 0, deployed.stderr
    served = run(
        installed,
        tmp_path,
        "-c",
        """
import engine, webui
from webui import create_app
app = create_app()
client = app.test_client()
print(engine.__file__)
print(client.get("/sign-in").status_code, client.get("/static/build/app.css").status_code)
""",
    )
    assert served.returncode == 0, served.stderr
    where, statuses = served.stdout.split()[:1], served.stdout.split()[1:]
    assert where[0].startswith(str(installed)), "the installed package ran, not the checkout"
    assert statuses == ["200", "200"]
