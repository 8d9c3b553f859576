"""Small measuring tools: timers that collect samples, percentiles, peak memory, database size."""

from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine as SAEngine


class Samples(list):
    """Durations in seconds; percentiles in milliseconds."""

    @contextmanager
    def timing(self, cpu: Samples | None = None):
        """Time the block (wall clock); with `cpu`, also collect this process's CPU time there."""
        started, cpu_started = time.perf_counter(), time.process_time()
        yield
        self.append(time.perf_counter() - started)
        if cpu is not None:
            cpu.append(time.process_time() - cpu_started)

    def ms(self, p: float) -> float:
        """The p-th percentile (0-100) in milliseconds, nearest rank."""
        if not self:
            return float("nan")
        ordered = sorted(self)
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def peak_memory_mb() -> float:
    """The process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def database_bytes(db: SAEngine) -> int:
    """Bytes the database takes: the SQLite file and its WAL, or PostgreSQL's database size."""
    if db.dialect.name == "sqlite":
        path = Path(db.url.database)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with db.connect() as conn:
        return conn.scalar(text("SELECT pg_database_size(current_database())"))


class Progress:
    """A one-line progress bar on stderr, redrawn at most a few times a second."""

    def __init__(self, total: int, label: str, enabled: bool = True, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.enabled = enabled and os.environ.get("PEP_BENCH_QUIET") != "1"
        self._drawn = 0.0

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.25):
            return
        self._drawn = now
        filled = round(self.width * min(done, self.total) / self.total)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {note}\033[K"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
