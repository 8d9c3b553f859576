"""A child's history is hash-chained: it verifies, and any altered, removed or inserted event is named.

The chain is keyed (HMAC-SHA256, the key outside the database) and checkpointed outside the database:
someone who can change the database but holds neither cannot rewrite a history unseen, however they
recompute the hashes. Histories written before keying still verify. Numbers that are not finite are
never hashed into a history."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text, update

from engine import checkpoints, history, history_keys
from engine.errors import FormInvalid
from engine.models import Child, Event

from .conftest import TEST_HISTORY_KEY
from .test_runtime import MEETING, PEP, complete, only_task, start_review


def a_reviewed_child(engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)


def verify(council, child_id="C001"):
    with council() as s:
        return history.verify(s, child_id)


def event_id(council, kind: str) -> int:
    with council() as s:
        return s.scalar(select(Event.id).where(Event.child_id == "C001", Event.kind == kind).order_by(Event.seq))


def test_every_step_is_recorded_with_who_did_it_and_what_they_submitted(deployed, engine, council):
    a_reviewed_child(engine, council)
    with council() as s:
        completed = [e for e in history.events(s, "C001") if e.kind == "task_completed"]
    assert [(e.actor, e.data["name"]) for e in completed] == [
        ("sw@demo.test", "Arrange the PEP meeting"),
        ("dt@demo.test", "Complete the PEP"),
    ]
    assert completed[1].data["data"] == PEP
    assert completed[1].data["late"] is False and completed[1].data["due_at"] == "2026-03-17T23:59:59+00:00"
    assert completed[0].data["path"] == ["arrange_meeting", "set_deadline"]


def test_an_untouched_history_verifies(deployed, engine, council):
    a_reviewed_child(engine, council)
    result = verify(council)
    assert result.ok and result.events > 5


@pytest.mark.tampered
def test_changing_what_a_teacher_submitted_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_completed")
    with council.begin() as s:
        forged = {**s.get(Event, target).data, "data": {"meeting_date": "2026-03-01", "venue": "elsewhere"}}
        s.execute(update(Event).where(Event.id == target).values(data=forged))
    problems = verify(council).problems
    assert len(problems) == 1 and f"id {target}" in problems[0] and "altered" in problems[0]


@pytest.mark.tampered
def test_changing_when_something_happened_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_ready")
    with council.begin() as s:
        event = s.get(Event, target)
        s.execute(update(Event).where(Event.id == target).values(at=event.at.replace(year=2025)))
    assert any("altered" in p for p in verify(council).problems)


@pytest.mark.tampered
def test_removing_an_event_from_the_middle_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_completed")
    with council.begin() as s:
        s.execute(delete(Event).where(Event.id == target))
    problems = verify(council).problems
    assert any("missing" in p for p in problems) and any("removed or inserted" in p for p in problems)


@pytest.mark.tampered
def test_removing_the_latest_event_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    with council.begin() as s:
        last = s.scalar(select(func.max(Event.id)).where(Event.child_id == "C001"))
        s.execute(delete(Event).where(Event.id == last))
    assert any("removed or added at the end" in p for p in verify(council).problems)


@pytest.mark.tampered
def test_inserting_a_forged_event_with_a_valid_hash_is_detected(deployed, engine, council):
    """A forger who knows the hash function renumbers the later events and slips one in after #2."""
    a_reviewed_child(engine, council)
    with council.begin() as s:
        later = s.scalars(select(Event).where(Event.child_id == "C001", Event.seq > 2).order_by(Event.seq.desc()))
        for event in later:
            s.execute(update(Event).where(Event.id == event.id).values(seq=event.seq + 1))
        second = s.scalar(select(Event).where(Event.child_id == "C001", Event.seq == 2))
        data = {"name": "Signed off"}
        forged_hash = history.event_hash(
            second.hash, "C001", 3, "task_completed", second.at, "forger@demo.test", second.instance_id, None, data
        )
        s.add(
            Event(
                child_id="C001",
                seq=3,
                kind="task_completed",
                at=second.at,
                actor="forger@demo.test",
                instance_id=second.instance_id,
                task_id=None,
                data=data,
                prev_hash=second.hash,
                hash=forged_hash,
            )
        )
    problems = verify(council).problems
    assert any("#4" in p and "removed or inserted" in p for p in problems), problems


@pytest.mark.tampered
def test_one_childs_chain_is_independent_of_anothers(deployed, engine, council):
    a_reviewed_child(engine, council)
    start_review(engine, council, "C002")
    with council.begin() as s:
        s.execute(delete(Event).where(Event.child_id == "C002"))
    assert verify(council, "C001").ok
    assert not verify(council, "C002").ok


# ---- numbers that are not numbers --------------------------------------------------------------


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")], ids=["nan", "1e309", "-1e309"])
def test_a_teacher_who_types_a_number_that_is_not_finite_is_asked_for_a_number(deployed, engine, council, number):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with pytest.raises(FormInvalid) as refused, council.begin() as s:
        engine.complete_task(s, only_task(council).id, "dt@demo.test", {**PEP, "attendance_percent": number})
    assert refused.value.errors == {"attendance_percent": "Attendance (%) must be a number"}
    assert verify(council).ok


def test_a_number_that_is_not_finite_is_never_hashed_into_a_history(deployed, engine, council):
    """What JSON cannot store must not be hashed: NaN would be hashed as NaN and stored as null."""
    start_review(engine, council)
    with council() as s:
        before = history.events(s, "C001")
    with pytest.raises(history.UnrecordableData, match="not finite"), council.begin() as s:
        engine.start(s, "test_review", "C002", actor="sw@demo.test", data={"priority": float("nan")})
    with pytest.raises(history.UnrecordableData), council.begin() as s:
        history.append(
            s,
            "C001",
            [
                {
                    "kind": "record_viewed",
                    "actor": "sw@demo.test",
                    "data": {"page": "child", "scores": [1.5, float("inf")]},
                }
            ],
            before[-1].at,
        )
    with pytest.raises(ValueError):
        history.event_hash(
            history.GENESIS, "C001", 1, "record_viewed", before[-1].at, "sw@demo.test", None, None, {"n": float("nan")}
        )
    with council() as s:
        assert [e.id for e in history.events(s, "C001")] == [e.id for e in before]
    assert verify(council).ok


# ---- keyed history ---------------------------------------------------------------------------------


def views(council, *who: str) -> None:
    """People look at the child's record (as the web app writes it)."""
    with council.begin() as s:
        at = s.scalar(select(func.max(Event.at)).where(Event.child_id == "C001"))
        for email in who:
            history.append(s, "C001", [{"kind": "record_viewed", "actor": email, "data": {"page": "child"}}], at)


def checkpoint(council, path, at="2026-03-02T18:00:00+00:00"):
    return checkpoints.write(council, datetime.fromisoformat(at), path)


def verify_with_checkpoints(council, path, child_id="C001"):
    pinned = checkpoints.load(path)
    assert pinned.problems == []
    with council() as s:
        return history.verify(s, child_id, pinned)


def test_events_are_signed_with_the_history_key_and_name_it(deployed, engine, council):
    a_reviewed_child(engine, council)
    key = history_keys.signing_key()
    with council() as s:
        recorded = history.events(s, "C001")
    assert {e.key_id for e in recorded} == {key.id}
    first = recorded[0]
    assert (
        first.hash
        == hmac.new(
            TEST_HISTORY_KEY.encode(),
            (
                history.GENESIS
                + json.dumps(
                    [
                        "C001",
                        1,
                        first.kind,
                        first.at.isoformat(),
                        first.actor,
                        first.instance_id,
                        first.task_id,
                        first.data,
                    ],
                    sort_keys=True,
                    separators=(",", ":"),
                )
            ).encode(),
            hashlib.sha256,
        ).hexdigest()
    )


def insider_rechains(session, child_id="C001", as_old_history=False) -> None:
    """What someone with the database but not the key does after changing events: recompute every hash
    the only way they can, SHA-256, keeping each event's key id or passing the events off as written
    before the history was keyed (no key id); then point the child's record at the new end."""
    prev = history.GENESIS
    rows = session.scalars(select(Event).where(Event.child_id == child_id).order_by(Event.seq)).all()
    for event in rows:
        digest = history.event_hash(
            prev, child_id, event.seq, event.kind, event.at, event.actor, event.instance_id, event.task_id, event.data
        )
        values = {"prev_hash": prev, "hash": digest}
        if as_old_history:
            values["key_id"] = None
        session.execute(update(Event).where(Event.id == event.id).values(**values))
        prev = digest
    session.execute(update(Child).where(Child.id == child_id).values(history_seq=len(rows), history_head=prev))


def _renumber_from(session, seq: int, by: int) -> None:
    later = session.scalars(
        select(Event)
        .where(Event.child_id == "C001", Event.seq >= seq)
        .order_by(Event.seq.desc() if by > 0 else Event.seq)
    ).all()
    for event in later:
        session.execute(update(Event).where(Event.id == event.id).values(seq=event.seq + by))


def change_the_actor(s):
    target = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq.desc()))
    s.execute(update(Event).where(Event.id == target.id).values(actor="someone.else@demo.test"))


def delete_a_record_view(s):
    viewed = s.scalar(select(Event).where(Event.kind == "record_viewed").order_by(Event.seq))
    s.execute(delete(Event).where(Event.id == viewed.id))
    _renumber_from(s, viewed.seq + 1, -1)


def delete_the_newest_record_views(s):
    s.execute(delete(Event).where(Event.kind == "record_viewed"))


def forge_a_record_view(s):
    viewed = s.scalar(select(Event).where(Event.kind == "record_viewed").order_by(Event.seq))
    seq = viewed.seq
    _renumber_from(s, seq, +1)
    s.add(
        Event(
            child_id="C001",
            seq=seq,
            kind="record_viewed",
            at=viewed.at,
            actor="alibi@demo.test",
            instance_id=None,
            task_id=None,
            data={"page": "child"},
            prev_hash="",
            hash="",
            key_id=viewed.key_id,
        )
    )


def backdate_a_step(s):
    target = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq.desc()))
    s.execute(update(Event).where(Event.id == target.id).values(at=target.at - timedelta(days=30)))


def rewrite_an_answer(s):
    target = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq.desc()))
    s.execute(
        update(Event)
        .where(Event.id == target.id)
        .values(data={**target.data, "data": {**target.data["data"], "attendance_percent": 100}})
    )


def erase_the_whole_history(s):
    s.execute(delete(Event).where(Event.child_id == "C001"))


REWRITES = [
    change_the_actor,
    delete_a_record_view,
    delete_the_newest_record_views,
    forge_a_record_view,
    backdate_a_step,
    rewrite_an_answer,
    erase_the_whole_history,
]


@pytest.mark.tampered
@pytest.mark.parametrize("as_old_history", [False, True], ids=["keeping-key-ids", "passed-off-as-unkeyed"])
@pytest.mark.parametrize("rewrite", REWRITES, ids=lambda f: f.__name__)
def test_an_insider_who_rewrites_a_history_and_rechains_it_without_the_key_is_caught(
    deployed, engine, council, checkpoint_file, rewrite, as_old_history
):
    a_reviewed_child(engine, council)
    views(council, "dt@demo.test", "sw@demo.test")
    assert checkpoint(council, checkpoint_file).written == ["C001"]
    assert verify_with_checkpoints(council, checkpoint_file).ok
    with council.begin() as s:
        rewrite(s)
        insider_rechains(s, as_old_history=as_old_history)
    result = verify_with_checkpoints(council, checkpoint_file)
    assert not result.ok
    assert any("checkpoint" in p for p in result.problems), result.problems


@pytest.mark.tampered
@pytest.mark.parametrize(
    "rewrite",
    [r for r in REWRITES if r not in (delete_the_newest_record_views, erase_the_whole_history)],
    ids=lambda f: f.__name__,
)
def test_the_key_alone_catches_a_rewritten_signed_event_even_before_any_checkpoint(deployed, engine, council, rewrite):
    a_reviewed_child(engine, council)
    views(council, "dt@demo.test", "sw@demo.test")
    with council.begin() as s:
        rewrite(s)
        insider_rechains(s)
    assert any("content altered" in p for p in verify(council).problems)


@pytest.mark.tampered
def test_a_signed_history_cannot_be_passed_off_in_part_as_history_from_before_keying(deployed, engine, council):
    a_reviewed_child(engine, council)
    with council.begin() as s:  # the newest event changed, and hashed as the events before keying were
        last = s.scalar(select(Event).where(Event.child_id == "C001").order_by(Event.seq.desc()))
        digest = history.event_hash(
            last.prev_hash,
            "C001",
            last.seq,
            last.kind,
            last.at,
            "someone.else@demo.test",
            last.instance_id,
            last.task_id,
            last.data,
        )
        s.execute(
            update(Event).where(Event.id == last.id).values(actor="someone.else@demo.test", hash=digest, key_id=None)
        )
        s.execute(update(Child).where(Child.id == "C001").values(history_head=digest))
    problems = verify(council).problems
    assert problems == [
        f"event #{last.seq} (id {last.id}, {last.kind}): not signed with a history key, after events "
        "that are: written or rewritten by someone without the key"
    ]


@pytest.mark.tampered
def test_a_whole_child_deleted_from_the_database_is_named_from_the_checkpoints(
    deployed, engine, council, checkpoint_file
):
    start_review(engine, council, "C002")
    checkpoint(council, checkpoint_file)
    with council.begin() as s:
        for table in ("event", "open_task", "notification", "instance", "case_team_member", "child"):
            s.execute(
                text(
                    f"DELETE FROM {table} WHERE child_id = 'C002'"
                    if table != "child"
                    else "DELETE FROM child WHERE id = 'C002'"
                )
            )
    assert verify_with_checkpoints(council, checkpoint_file, "C002").problems == [
        "no child C002, but the checkpoint of 2026-03-02T18:00:00+00:00 (line 1) recorded #2 events of their history: "
        "the child and their history were deleted"
    ]
    assert checkpoint(council, checkpoint_file).missing == ["C002"]


@pytest.mark.tampered
def test_the_newest_events_deleted_since_the_last_checkpoint_are_not_seen_until_the_next(
    deployed, engine, council, checkpoint_file
):
    """The limit of checkpoints: what happened after the last one is vouched for by the key alone."""
    a_reviewed_child(engine, council)
    checkpoint(council, checkpoint_file)
    views(council, "dt@demo.test")
    with council.begin() as s:  # the events before are untouched: the child's record points at the last of them
        delete_the_newest_record_views(s)
        last = s.scalar(select(Event).where(Event.child_id == "C001").order_by(Event.seq.desc()))
        s.execute(update(Child).where(Child.id == "C001").values(history_seq=last.seq, history_head=last.hash))
    assert verify_with_checkpoints(council, checkpoint_file).ok


# ---- histories written before keying, and key rotation ----------------------------------------


def written_before_keying(council, child_id="C001") -> int:
    """Turn the child's history into what the service wrote before the chain was keyed: plain SHA-256
    hashes and no key ids (which is also what an insider passing events off as old history writes)."""
    with council.begin() as s:
        insider_rechains(s, child_id, as_old_history=True)
        return s.scalar(select(func.count(Event.id)).where(Event.child_id == child_id))


def test_a_history_written_before_keying_still_verifies_and_goes_on_signed(deployed, engine, council, checkpoint_file):
    start_review(engine, council)
    old = written_before_keying(council)
    result = verify(council)
    assert result.ok and result.unkeyed == old == result.events
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)  # after the upgrade: signed
    result = verify(council)
    assert result.ok and result.unkeyed == old < result.events
    run = checkpoint(council, checkpoint_file)
    assert run.written == ["C001"] and run.ok
    line = json.loads(checkpoint_file.read_text().splitlines()[0])
    assert line["unkeyed"] == old and line["seq"] == result.events
    assert verify_with_checkpoints(council, checkpoint_file).ok


@pytest.mark.tampered
def test_after_the_first_checkpoint_no_history_may_start_unkeyed(deployed, engine, council, checkpoint_file):
    """A child first checkpointed after keying vouches for no unkeyed events: a history forged, or
    rewritten, in the old form since is caught even before its own first checkpoint."""
    start_review(engine, council)
    checkpoint(council, checkpoint_file)
    start_review(engine, council, "C002")
    with council.begin() as s:
        insider_rechains(s, "C002", as_old_history=True)
    problems = verify_with_checkpoints(council, checkpoint_file, "C002").problems
    assert problems and all("no checkpoint vouches for it" in p for p in problems), problems
    run = checkpoint(council, checkpoint_file)
    assert list(run.refused) == ["C002"] and run.written == []


def test_a_rotated_key_signs_from_then_on_and_the_old_key_still_verifies(deployed, engine, council, monkeypatch):
    start_review(engine, council)
    old = history_keys.signing_key()
    new_secret = "rotated-history-key-" + "f" * 40
    monkeypatch.setenv("PEP_HISTORY_KEY", f"{new_secret}, {TEST_HISTORY_KEY}")
    new = history_keys.signing_key()
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with council() as s:
        assert [e.key_id for e in history.events(s, "C001")] == [old.id] * 2 + [new.id] * 2
    assert verify(council).ok
    monkeypatch.setenv("PEP_HISTORY_KEY", new_secret)  # the old key lost
    assert verify(council).problems == [
        f"2 event(s) signed with history key {old.id}, which the key ring (PEP_HISTORY_KEY) does not hold: "
        "they cannot be verified"
    ]
    monkeypatch.setenv("PEP_HISTORY_KEY", f"{new_secret} {TEST_HISTORY_KEY}")  # found again: the replay check


def test_the_key_file_is_made_on_first_use_for_its_owner_only_and_rotated_in_place(monkeypatch, tmp_path):
    monkeypatch.delenv("PEP_HISTORY_KEY")
    path = tmp_path / "keys" / "history_key"
    monkeypatch.setenv("PEP_HISTORY_KEY_FILE", str(path))
    assert history_keys.ring().keys == ()  # verifying makes no key
    assert not path.exists()
    first = history_keys.signing_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert history_keys.signing_key() == first and len(path.read_text().split()) == 1
    second = history_keys.rotate()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.id for k in history_keys.ring().keys] == [second.id, first.id]
    assert history_keys.signing_key() == second


def test_a_history_key_must_be_long_and_is_hmac_sha256():
    with pytest.raises(history_keys.HistoryKeyError, match="at least 32 characters"):
        history_keys.HistoryKey.from_secret("short")
    for secret in ("k" * 32, "k" * 64, "k" * 65, "ключ" * 20):
        key = history_keys.HistoryKey.from_secret(secret)
        assert key.mac(b"message") == hmac.new(secret.encode(), b"message", hashlib.sha256).hexdigest()


# ---- the checkpoint file ---------------------------------------------------------------------------


def test_a_checkpoint_is_signed_chained_and_written_only_for_histories_that_moved(
    deployed, engine, council, checkpoint_file
):
    start_review(engine, council)
    first = checkpoint(council, checkpoint_file)
    assert (first.written, first.unchanged) == (["C001"], 0)
    assert stat.S_IMODE(checkpoint_file.stat().st_mode) == 0o600
    again = checkpoint(council, checkpoint_file, "2026-03-03T18:00:00+00:00")
    assert (again.written, again.unchanged) == ([], 1)
    start_review(engine, council, "C002")
    views(council, "sw@demo.test")
    third = checkpoint(council, checkpoint_file, "2026-03-04T18:00:00+00:00")
    assert third.written == ["C001", "C002"]
    lines = [json.loads(line) for line in checkpoint_file.read_text().splitlines()]
    assert [(line["child"], line["seq"], line["at"][:10]) for line in lines] == [
        ("C001", 2, "2026-03-02"),
        ("C001", 3, "2026-03-04"),
        ("C002", 2, "2026-03-04"),
    ]
    assert lines[0]["prev"] == "" and [line["prev"] for line in lines[1:]] == [line["mac"] for line in lines[:-1]]
    assert {line["key_id"] for line in lines} == {history_keys.signing_key().id}
    result = verify_with_checkpoints(council, checkpoint_file)
    assert result.ok and result.checkpoints == 2


@pytest.mark.tampered
def test_a_checkpoint_file_altered_cut_or_forged_is_named_line_by_line(deployed, engine, council, checkpoint_file):
    start_review(engine, council)
    start_review(engine, council, "C002")
    checkpoint(council, checkpoint_file)
    views(council, "sw@demo.test")
    checkpoint(council, checkpoint_file, "2026-03-03T18:00:00+00:00")
    lines = checkpoint_file.read_text().splitlines()
    assert len(lines) == 3

    altered = json.loads(lines[0]) | {"seq": 1}
    checkpoint_file.write_text("\n".join([json.dumps(altered), *lines[1:]]) + "\n")
    assert checkpoints.load(checkpoint_file).problems == [
        "line 1: its signature does not match (the line was altered or forged)"
    ]

    checkpoint_file.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert checkpoints.load(checkpoint_file).problems == [
        "line 2 does not follow the line before it: checkpoints were removed, inserted or reordered"
    ]

    forged = json.loads(lines[2]) | {"child": "C002"}
    forged["mac"] = hmac.new(b"a guess at the key", json.dumps(forged).encode(), hashlib.sha256).hexdigest()
    checkpoint_file.write_text("\n".join([*lines, json.dumps(forged), "{not json"]) + "\n")
    assert checkpoints.load(checkpoint_file).problems == [
        "line 4 does not follow the line before it: checkpoints were removed, inserted or reordered",
        "line 4: its signature does not match (the line was altered or forged)",
        "line 5: not a checkpoint (unreadable)",
    ]


def test_the_scheduler_checkpoints_when_it_starts_and_daily(deployed, engine, council, checkpoint_file):
    from engine.scheduler import checkpoint_job, make_scheduler

    start_review(engine, council)
    scheduler = make_scheduler(engine, council, checkpoint_file=checkpoint_file)
    job = scheduler.get_job("checkpoint")
    assert job.trigger.interval == timedelta(days=1)
    checkpoint_job(engine, council, checkpoint_file)
    assert [json.loads(line)["at"] for line in checkpoint_file.read_text().splitlines()] == [engine.now().isoformat()]
