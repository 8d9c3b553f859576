"""A child's append-only history, hash-chained so that any altered, removed or inserted event shows.

The runtime appends events inside the transaction of each step (after the instance row is written,
so locks are always taken instance first, then child); auditors and `pep history --verify` read it.
The chain's tip is read and written with plain statements: the step's hottest path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from .models import Child, Event

GENESIS = "0" * 64


def event_hash(prev_hash: str, child_id: str, seq: int, kind: str, at: datetime, actor: str,
               instance_id: int | None, task_id: str | None, data: dict) -> str:
    """Hash one event together with the hash of the event before it."""
    body = json.dumps(
        [child_id, seq, kind, at.isoformat(), actor, instance_id, task_id, data],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


CHILDREN = Child.__table__
LOCKED_TIP = (select(CHILDREN.c.history_seq, CHILDREN.c.history_head)
              .where(CHILDREN.c.id == bindparam("child_id")).with_for_update())
WRITE_LOCK = CHILDREN.update().where(CHILDREN.c.id == bindparam("child_id")).values(history_seq=CHILDREN.c.history_seq)
EVENTS = Event.__table__.insert().inline()  # inline: their ids are not read back (a pipeline cannot)
NEW_TIP = CHILDREN.update().where(CHILDREN.c.id == bindparam("child_id")).values(
    history_seq=bindparam("seq"), history_head=bindparam("head"))


def locked_tip(session: Session, child_id: str) -> tuple[int, str]:
    """The end of the child's chain (sequence number, hash), locked until the transaction ends."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks and Python's sqlite3 begins the transaction only at the first
        # write: write first, so that the chain's tip is read under the database's write lock
        session.execute(WRITE_LOCK, {"child_id": child_id})
    tip = session.execute(LOCKED_TIP, {"child_id": child_id}).first()
    if tip is None:
        raise LookupError(f"no child {child_id}")
    return tip.history_seq, tip.history_head


def append(session: Session, child_id: str, entries: list[dict], at: datetime,
           tip: tuple[int, str] | None = None, writes=None) -> int:
    """Append events (dicts with kind, actor, data and optional instance_id, task_id) to the chain;
    return how many. `tip` is the chain's end if the caller has already locked it in this
    transaction (a runtime step has, after writing its instance: locks go instance, then child);
    `writes` what runs the statements if not the session's connection (a step's pipeline)."""
    if not entries:
        return 0
    seq, head = tip if tip is not None else locked_tip(session, child_id)
    head = head or GENESIS
    rows = []
    for entry in entries:
        seq += 1
        data = json.loads(json.dumps(entry.get("data") or {}, default=str))
        digest = event_hash(head, child_id, seq, entry["kind"], at, entry["actor"],
                            entry.get("instance_id"), entry.get("task_id"), data)
        rows.append({"child_id": child_id, "seq": seq, "kind": entry["kind"], "at": at, "actor": entry["actor"],
                     "instance_id": entry.get("instance_id"), "task_id": entry.get("task_id"), "data": data,
                     "prev_hash": head, "hash": digest})
        head = digest
    writes = writes or session.connection()  # plain statements: no ORM bookkeeping on the hottest write
    writes.execute(EVENTS, rows)  # one INSERT for the step's events
    writes.execute(NEW_TIP, {"child_id": child_id, "seq": seq, "head": head})
    loaded = session.identity_map.get(identity_key(Child, child_id))
    if loaded is not None:  # a Child the session holds shows the new tip too
        set_committed_value(loaded, "history_seq", seq)
        set_committed_value(loaded, "history_head", head)
    return len(rows)


@dataclass
class Verification:
    child_id: str
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, child_id: str) -> Verification:
    """Re-walk a child's chain; name every event that was altered, removed or inserted."""
    result = Verification(child_id)
    child = session.get(Child, child_id)
    if child is None:
        result.problems.append(f"no child {child_id}")
        return result
    prev, expected_seq = GENESIS, 1
    for event in session.scalars(select(Event).where(Event.child_id == child_id).order_by(Event.seq, Event.id)):
        result.events += 1
        if event.seq != expected_seq:
            what = "missing" if event.seq > expected_seq else "duplicated"
            result.problems.append(f"event #{event.seq} (id {event.id}): sequence broken, #{expected_seq} {what}")
        if event.prev_hash != prev:
            result.problems.append(f"event #{event.seq} (id {event.id}): does not follow the event before it (removed or inserted event)")
        recomputed = event_hash(event.prev_hash, child_id, event.seq, event.kind, event.at, event.actor,
                                event.instance_id, event.task_id, event.data)
        if recomputed != event.hash:
            result.problems.append(f"event #{event.seq} (id {event.id}, {event.kind}): content altered")
        prev, expected_seq = event.hash, event.seq + 1
    if result.events != child.history_seq or prev != (child.history_head or GENESIS):
        result.problems.append(
            f"chain ends at #{expected_seq - 1} but the child's record says #{child.history_seq}: events removed or added at the end"
        )
    return result


def events(session: Session, child_id: str, instance_id: int | None = None) -> list[Event]:
    """A child's events in order, optionally of one instance."""
    query = select(Event).where(Event.child_id == child_id)
    if instance_id is not None:
        query = query.where(Event.instance_id == instance_id)
    return list(session.scalars(query.order_by(Event.seq)))
