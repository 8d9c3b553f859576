"""A child's append-only history, hash-chained so that any altered, removed or inserted event shows.

The runtime appends events inside the transaction of each step (after the instance row is written,
so locks are always taken instance first, then child); auditors and `pep history --verify` read it.
The chain's tip is read and written with plain statements: the step's hottest path.

Each event's hash is an HMAC-SHA256 under a key kept outside the database (engine/history_keys.py),
whose id the event records: someone who can write to the database but holds no key cannot recompute
the chain after changing it. Events written before the chain was keyed have no key id and a plain
SHA-256 hash; they still verify, but only at the start of a chain, and once a checkpoint file is in
use only as far as a checkpoint vouches for them (engine/checkpoints.py): otherwise anyone could
rewrite a history in the old, unkeyed form. Signed checkpoints, kept outside the database, also show
events or whole histories deleted since they were taken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from . import history_keys
from .history_keys import HistoryKey, KeyRing
from .models import Child, Event

if TYPE_CHECKING:
    from .checkpoints import Checkpoints

GENESIS = "0" * 64


class UnrecordableData(ValueError):
    """Data the history cannot record as it is: a number that is not finite (NaN, infinity) would be
    hashed as one thing and stored as another (JSON has no such numbers), breaking the chain for ever."""


def json_float(text: str) -> float:
    """A JSON number with a fraction or an exponent, as the history keeps it: PostgreSQL's JSONB has no
    negative zero (it gives -0.0 back as 0.0), so the history has none either, and what is hashed is
    what is stored."""
    return float(text) + 0.0  # -0.0 + 0.0 is 0.0


def event_hash(
    prev_hash: str,
    child_id: str,
    seq: int,
    kind: str,
    at: datetime,
    actor: str,
    instance_id: int | None,
    task_id: str | None,
    data: dict,
    key: HistoryKey | None = None,
) -> str:
    """Hash one event together with the hash of the event before it: HMAC-SHA256 under `key`, or the
    plain SHA-256 of the events written before the chain was keyed (key None)."""
    body = json.dumps(
        [child_id, seq, kind, at.isoformat(), actor, instance_id, task_id, data],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
        allow_nan=False,
    )
    message = (prev_hash + body).encode("utf-8")
    return key.mac(message) if key is not None else hashlib.sha256(message).hexdigest()


CHILDREN = cast(Table, Child.__table__)  # a declarative class's table (SQLAlchemy types it as any FromClause)
LOCKED_TIP = (
    select(CHILDREN.c.history_seq, CHILDREN.c.history_head)
    .where(CHILDREN.c.id == bindparam("child_id"))
    .with_for_update()
)
WRITE_LOCK = CHILDREN.update().where(CHILDREN.c.id == bindparam("child_id")).values(history_seq=CHILDREN.c.history_seq)
EVENTS = cast(Table, Event.__table__).insert().inline()  # inline: their ids are not read back (a pipeline cannot)
NEW_TIP = (
    CHILDREN.update()
    .where(CHILDREN.c.id == bindparam("child_id"))
    .values(history_seq=bindparam("seq"), history_head=bindparam("head"))
)


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


def append(
    session: Session, child_id: str, entries: list[dict], at: datetime, tip: tuple[int, str] | None = None, writes=None
) -> int:
    """Append events (dicts with kind, actor, data and optional instance_id, task_id) to the chain,
    signed with the current history key; return how many. `tip` is the chain's end if the caller has
    already locked it in this transaction (a runtime step has, after writing its instance: locks go
    instance, then child); `writes` what runs the statements if not the session's connection (a
    step's pipeline). Data holding a number that is not finite is refused (UnrecordableData)."""
    if not entries:
        return 0
    seq, head = tip if tip is not None else locked_tip(session, child_id)
    rows, seq, head = signed_rows(child_id, entries, at, seq, head)
    writes = writes or session.connection()  # plain statements: no ORM bookkeeping on the hottest write
    writes.execute(EVENTS, rows)  # one INSERT for the step's events
    writes.execute(NEW_TIP, {"child_id": child_id, "seq": seq, "head": head})
    loaded = session.identity_map.get(identity_key(Child, child_id))
    if loaded is not None:  # a Child the session holds shows the new tip too
        set_committed_value(loaded, "history_seq", seq)
        set_committed_value(loaded, "history_head", head)
    return len(rows)


def signed_rows(
    child_id: str, entries: list[dict], at: datetime, seq: int = 0, head: str = ""
) -> tuple[list[dict], int, str]:
    """The event rows of `entries` chained on from (seq, head), signed with the current history key,
    and the chain's new end: for `append`, and for an import that writes the first events of many new
    children at once (their chain starts at 0)."""
    key = history_keys.signing_key()
    head = head or GENESIS
    rows = []
    for entry in entries:
        seq += 1
        try:
            data = json.loads(json.dumps(entry.get("data") or {}, default=str, allow_nan=False), parse_float=json_float)
        except ValueError as exc:
            raise UnrecordableData(
                f"the {entry['kind'].replace('_', ' ')} cannot be recorded in the history of "
                f"{child_id}: it holds a number that is not finite (NaN or infinity)"
            ) from exc
        digest = event_hash(
            head,
            child_id,
            seq,
            entry["kind"],
            at,
            entry["actor"],
            entry.get("instance_id"),
            entry.get("task_id"),
            data,
            key,
        )
        rows.append(
            {
                "child_id": child_id,
                "seq": seq,
                "kind": entry["kind"],
                "at": at,
                "actor": entry["actor"],
                "instance_id": entry.get("instance_id"),
                "task_id": entry.get("task_id"),
                "data": data,
                "prev_hash": head,
                "hash": digest,
                "key_id": key.id,
            }
        )
        head = digest
    return rows, seq, head


@dataclass
class Verification:
    child_id: str
    events: int = 0
    unkeyed: int = 0  # events from before the chain was keyed (plain SHA-256)
    checkpoints: int = 0  # signed checkpoints of this child the chain was held against
    seq: int = 0  # the end of the chain as verified: the last event's number and hash
    head: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    session: Session, child_id: str, checkpoints: Checkpoints | None = None, keys: KeyRing | None = None
) -> Verification:
    """Re-walk a child's chain; name every event that was altered, removed or inserted.

    Each keyed event is checked with its key from `keys` (the installation's key ring by default); an
    unkeyed one only at the start of the chain and, where `checkpoints` are in use, only as far as they
    vouch for unkeyed events. With `checkpoints`, the chain must also hold every event they recorded,
    each with the hash they recorded: a child, or events, deleted since show."""
    result = Verification(child_id)
    keys = keys if keys is not None else history_keys.ring()
    pinned = checkpoints.of(child_id) if checkpoints is not None else []
    result.checkpoints = len(pinned)
    child = session.get(Child, child_id)
    if child is None:
        if pinned:
            last = max(pinned, key=lambda c: c.seq)
            result.problems.append(
                f"no child {child_id}, but the checkpoint of {last.at} (line {last.line}) recorded "
                f"#{last.seq} events of their history: the child and their history were deleted"
            )
        else:
            result.problems.append(f"no child {child_id}")
        return result
    unkeyed_until = checkpoints.unkeyed_allowed(child_id) if checkpoints is not None else None
    prev, expected_seq, keyed = GENESIS, 1, False
    unknown: dict[str, int] = {}  # key id -> how many events it signed
    hashes: dict[int, str] = {}
    for event in session.scalars(select(Event).where(Event.child_id == child_id).order_by(Event.seq, Event.id)):
        result.events += 1
        named = f"event #{event.seq} (id {event.id}, {event.kind})"
        if event.seq != expected_seq:
            what = "missing" if event.seq > expected_seq else "duplicated"
            result.problems.append(f"event #{event.seq} (id {event.id}): sequence broken, #{expected_seq} {what}")
        if event.prev_hash != prev:
            result.problems.append(
                f"event #{event.seq} (id {event.id}): does not follow the event before it (removed or inserted event)"
            )
        key = None
        if event.key_id is None:
            result.unkeyed += 1
            if keyed:
                result.problems.append(
                    f"{named}: not signed with a history key, after events that are: "
                    "written or rewritten by someone without the key"
                )
            elif unkeyed_until is not None and event.seq > unkeyed_until:
                result.problems.append(
                    f"{named}: not signed with a history key, and no checkpoint vouches for it "
                    "as written before the history was keyed: written or rewritten without the key"
                )
        else:
            keyed, key = True, keys.get(event.key_id)
            if key is None:
                unknown[event.key_id] = unknown.get(event.key_id, 0) + 1
        if event.key_id is None or key is not None:
            recomputed = event_hash(
                event.prev_hash,
                child_id,
                event.seq,
                event.kind,
                event.at,
                event.actor,
                event.instance_id,
                event.task_id,
                event.data,
                key,
            )
            if recomputed != event.hash:
                result.problems.append(f"{named}: content altered")
        hashes.setdefault(event.seq, event.hash)
        prev, expected_seq = event.hash, event.seq + 1
    result.seq, result.head = expected_seq - 1, prev
    for key_id, count in unknown.items():
        result.problems.append(
            f"{count} event(s) signed with history key {key_id}, which the key ring "
            f"({keys.source}) does not hold: they cannot be verified"
        )
    if result.events != child.history_seq or prev != (child.history_head or GENESIS):
        result.problems.append(
            f"chain ends at #{expected_seq - 1} but the child's record says #{child.history_seq}: events removed or added at the end"
        )
    _hold_to_checkpoints(result, pinned, hashes)
    return result


def _hold_to_checkpoints(result: Verification, pinned: list, hashes: dict[int, str]) -> None:
    """The first checkpoint the chain no longer agrees with, and the longest one it falls short of."""
    for checkpoint in sorted(pinned, key=lambda c: c.seq):
        if checkpoint.seq <= result.seq and hashes.get(checkpoint.seq) != checkpoint.head:
            recorded = f"the checkpoint of {checkpoint.at} (line {checkpoint.line})"
            result.problems.append(
                f"event #{checkpoint.seq}, which {recorded} recorded, is missing"
                if checkpoint.seq not in hashes
                else f"event #{checkpoint.seq} is not the event {recorded} recorded: the history up to it was rewritten"
            )
            break
    longest = max(pinned, key=lambda c: c.seq, default=None)
    if longest is not None and longest.seq > result.seq:
        result.problems.append(
            f"the checkpoint of {longest.at} (line {longest.line}) recorded #{longest.seq} events, "
            f"the chain ends at #{result.seq}: events deleted"
        )


def events(session: Session, child_id: str, instance_id: int | None = None) -> list[Event]:
    """A child's events in order, optionally of one instance."""
    query = select(Event).where(Event.child_id == child_id)
    if instance_id is not None:
        query = query.where(Event.instance_id == instance_id)
    return list(session.scalars(query.order_by(Event.seq)))
