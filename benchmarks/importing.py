"""`python -m benchmarks import`: a council starting by importing its case system's extract. Writes a
synthetic extract of N children (a school per 6 children with its designated teacher, a social worker
per 15, 1% entering care in the last fortnight), then times `pep import`'s own steps on an emptied
database with the shipped processes deployed: reading and planning (the dry run), applying, and
importing the same file again (which changes nothing). All names and data are invented."""

from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from engine import clock as clocks
from engine import importer
from engine.db import session_factory
from engine.deploy import Bundle, deploy
from engine.roles import seed_roles
from engine.runtime import Engine

from .council import FIRST, LAST
from .run import fresh_database

ROOT = Path(__file__).resolve().parent.parent
STATUSES = ["C2", "C2", "C2", "C1", "V2", "E1"]


def extract(children: int, today: date, seed: int = 2025) -> bytes:
    """A case system's extract of `children` children, as CSV."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "Child ID",
            "Name",
            "Date of birth",
            "UPN",
            "School URN",
            "School name",
            "Legal status",
            "Date entered care",
            "Social worker's email",
            "Designated teacher's email",
        ]
    )
    for n in range(1, children + 1):
        school = rng.randrange(max(1, children // 6))
        born = today - timedelta(days=rng.randrange(4 * 365, 17 * 365))
        recent = rng.random() < 0.01
        entered = today - timedelta(days=rng.randrange(1, 10) if recent else rng.randrange(60, 3000))
        writer.writerow(
            [
                f"LL{n:07d}",
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                born.strftime("%d/%m/%Y"),
                f"A{n:012d}",
                f"{100000 + school}",
                f"School {school + 1}",
                rng.choice(STATUSES),
                max(entered, born).strftime("%d/%m/%Y"),
                f"sw{rng.randrange(max(1, children // 15)) + 1}@council.bench.test",
                f"dt{school + 1}@school.bench.test",
            ]
        )
    return out.getvalue().encode()


@dataclass
class Figures:
    children: int
    plan_seconds: float
    apply_seconds: float
    again_seconds: float
    summary: str
    again: str

    def report(self) -> str:
        return "\n".join(
            [
                f"import of {self.children:,} children: {self.summary}",
                f"  dry run (read + plan)       {self.plan_seconds:6.1f} s",
                f"  apply (plan + write)        {self.apply_seconds:6.1f} s   "
                f"({self.children / self.apply_seconds:,.0f} children/s)",
                f"  the same file again         {self.again_seconds:6.1f} s   ({self.again})",
            ]
        )


def run(url: str, children: int, seed: int = 2025, progress: bool = True) -> Figures:
    """Empty the database, deploy the shipped processes, and time the import of a synthetic extract."""
    sessions = session_factory(fresh_database(url))
    engine = Engine()
    with sessions.begin() as s:
        seed_roles(s)
        deploy(s, Bundle.from_dirs(ROOT), actor="bench@bench.test")
    content = extract(children, clocks.now().date(), seed)
    started = time.perf_counter()
    with sessions() as s:
        planned = importer.import_file(s, content, engine.now())
    plan_seconds = time.perf_counter() - started
    assert not planned.errors, planned.errors[:5]
    started = time.perf_counter()
    with sessions.begin() as s:
        result = importer.import_file(s, content, engine.now())
        importer.apply(s, result, engine, "bench-import", progress=_bar(children) if progress else None)
    apply_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with sessions.begin() as s:
        again = importer.import_file(s, content, engine.now())
        importer.apply(s, again, engine, "bench-import")
    again_seconds = time.perf_counter() - started
    return Figures(
        children,
        plan_seconds,
        apply_seconds,
        again_seconds,
        result.summary(done=True),
        f"{again.count('same'):,} left alone, {again.count('change')} changed, {len(again.starts)} started",
    )


def _bar(total: int):
    done = [0]

    def update(n: int) -> None:
        done[0] += n
        if done[0] % 1000 < n or done[0] == total:
            print(f"\r  importing {done[0]:,}/{total:,}", end="\n" if done[0] >= total else "", flush=True)

    return update
