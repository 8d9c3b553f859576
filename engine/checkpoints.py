"""Signed checkpoints of children's histories, kept outside the database.

`pep checkpoint` (and `pep scheduler`, daily) appends one line per child whose history moved since its
last checkpoint to an append-only file (`PEP_CHECKPOINTS`, default `instance/checkpoints.jsonl`): the
child, how many events their history held, the hash of the last one, when, and how many events at its
start were written before the history was keyed; signed with the history key (HMAC-SHA256, its id
recorded) and chained to the line before it. A checkpoint is written only for a history that verifies.

`pep verify` and `pep history --verify` then hold each history to its checkpoints: someone who can
change the database, but neither holds the key nor can change this file, cannot delete a child, nor
events, nor rewrite the history up to a checkpoint, unseen.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import history, history_keys
from .history_keys import HistoryKey, KeyRing
from .models import Child

ENV_FILE = "PEP_CHECKPOINTS"
DEFAULT_FILE = Path("instance") / "checkpoints.jsonl"
FIELDS = ("child", "seq", "head", "at", "key_id", "unkeyed", "prev")


def default_path() -> Path:
    return Path(os.environ.get(ENV_FILE) or DEFAULT_FILE)


@dataclass(frozen=True)
class Checkpoint:
    child_id: str
    seq: int
    head: str
    at: str
    key_id: str
    unkeyed: int  # events at the start of the chain written before it was keyed
    line: int


@dataclass
class Checkpoints:
    """A checkpoint file as read: its signed lines by child, and what is wrong with the file itself."""

    path: Path
    exists: bool = False
    lines: int = 0
    by_child: dict[str, list[Checkpoint]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    last_mac: str = ""

    def of(self, child_id: str) -> list[Checkpoint]:
        return self.by_child.get(child_id, [])

    def latest(self, child_id: str) -> Checkpoint | None:
        found = self.by_child.get(child_id)
        return found[-1] if found else None

    def unkeyed_allowed(self, child_id: str) -> int | None:
        """How many events at the start of the child's chain may be unkeyed: any (None) before the
        first checkpoint was written; after it, as many as the child's checkpoints vouch for (none
        for a child first checkpointed after it: their history began keyed)."""
        if not self.by_child:
            return None
        return max((c.unkeyed for c in self.of(child_id)), default=0)


def load(path: Path | None = None, keys: KeyRing | None = None) -> Checkpoints:
    """Read and check a checkpoint file: every line signed by a key of the ring, each following the one
    before it. A missing file reads as empty (`exists` False)."""
    path = path or default_path()
    keys = keys if keys is not None else history_keys.ring()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Checkpoints(path)
    return _parse(path, text, keys)


def _parse(path: Path, text: str, keys: KeyRing) -> Checkpoints:
    result = Checkpoints(path, exists=True)
    prev = ""
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        result.lines += 1
        try:
            line = json.loads(raw)
            values = {name: line[name] for name in FIELDS}
            checkpoint = Checkpoint(
                str(values["child"]),
                int(values["seq"]),
                str(values["head"]),
                str(values["at"]),
                str(values["key_id"]),
                int(values["unkeyed"]),
                number,
            )
            mac = str(line["mac"])
        except (ValueError, KeyError, TypeError):
            result.problems.append(f"line {number}: not a checkpoint (unreadable)")
            continue
        if values["prev"] != prev:
            result.problems.append(
                f"line {number} does not follow the line before it: checkpoints were removed, inserted or reordered"
            )
        prev = result.last_mac = mac
        key = keys.get(checkpoint.key_id)
        if key is None:
            result.problems.append(
                f"line {number}: signed with history key {checkpoint.key_id}, which the key ring "
                f"({keys.source}) does not hold: it cannot be verified"
            )
        elif _mac(key, values) != mac:
            result.problems.append(f"line {number}: its signature does not match (the line was altered or forged)")
        else:
            result.by_child.setdefault(checkpoint.child_id, []).append(checkpoint)
    return result


def _mac(key: HistoryKey, values: dict) -> str:
    body = json.dumps({name: values[name] for name in FIELDS}, sort_keys=True, separators=(",", ":"))
    return key.mac(b"pep checkpoint\n" + body.encode("utf-8"))


@dataclass
class Run:
    """What one checkpoint run did."""

    path: Path
    written: list[str] = field(default_factory=list)  # children checkpointed
    unchanged: int = 0  # children whose history had not moved since their last checkpoint
    refused: dict[str, list[str]] = field(default_factory=dict)  # children whose history does not verify
    missing: list[str] = field(default_factory=list)  # children checkpointed before, not in the database
    file_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.refused or self.missing or self.file_problems)


def write(sessions: sessionmaker, at: datetime, path: Path | None = None, keys: KeyRing | None = None) -> Run:
    """Append a signed checkpoint for every child whose history moved since their last one, after
    verifying it (a history that does not verify is refused and named, and keeps its old checkpoint).
    The file is locked while it is read and written: two runs at once write one after the other."""
    path = path or default_path()
    key = keys.signing_key() if keys is not None else history_keys.signing_key()
    keys = keys if keys is not None else history_keys.ring()
    path.parent.mkdir(parents=True, exist_ok=True)
    run = Run(path)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "r+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        text = file.read()
        existing = _parse(path, text, keys)
        run.file_problems = existing.problems
        prev, lines = existing.last_mac, []
        with sessions() as session:
            tips = session.execute(select(Child.id, Child.history_seq, Child.history_head).order_by(Child.id)).all()
        run.missing = sorted(set(existing.by_child) - {tip.id for tip in tips})
        for child_id, seq, head in tips:
            latest = existing.latest(child_id)
            if seq == 0 or (latest is not None and (latest.seq, latest.head) == (seq, head)):
                run.unchanged += seq > 0
                continue
            result = _verified(sessions, child_id, existing, keys)
            if not result.ok:
                run.refused[child_id] = result.problems
                continue
            values = {
                "child": child_id,
                "seq": result.seq,
                "head": result.head,
                "at": at.isoformat(),
                "key_id": key.id,
                "unkeyed": result.unkeyed,
                "prev": prev,
            }
            prev = _mac(key, values)
            lines.append(json.dumps({**values, "mac": prev}, separators=(",", ":")) + "\n")
            run.written.append(child_id)
        if lines:
            if text and not text.endswith("\n"):  # a line left unfinished (a crash): it stays unreadable alone
                lines.insert(0, "\n")
            file.write("".join(lines))
            file.flush()
            os.fsync(file.fileno())
    return run


def _verified(sessions: sessionmaker, child_id: str, existing: Checkpoints, keys: KeyRing) -> history.Verification:
    """The child's history verified against the key ring and the checkpoints so far, read as of one
    instant (PostgreSQL), or read again once if a step wrote to it while it was read (SQLite)."""
    for _attempt in range(2):
        with sessions() as session:
            _snapshot(session)
            result = history.verify(session, child_id, existing, keys)
        if result.ok:
            break
    return result


def _snapshot(session: Session) -> None:
    """Read as of one instant where the database can (PostgreSQL: REPEATABLE READ, read only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
