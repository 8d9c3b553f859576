"""The `pep` commands of children's histories: history (and `--verify`), verify (every child's chain,
held to the checkpoints), checkpoint, and history-key (show, rotate).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import select

from . import checkpoints, history, history_keys
from .cli_common import CHECKPOINT_FILE, Context, fails_cleanly
from .clock import SystemClock
from .models import Child
from .people import PeopleError
from .replay import replay_child
from .runtime import Engine


def _checkpoints(path: Path | None) -> checkpoints.Checkpoints:
    """The checkpoints to hold histories to: the file named (which must exist), else PEP_CHECKPOINTS or
    instance/checkpoints.jsonl (a warning, not a failure, when there is none: a new installation)."""
    found = checkpoints.load(path)
    if not found.exists and path is not None:
        raise ValueError(f"no checkpoint file at {path}")
    return found


def _warn_if_none(pinned: checkpoints.Checkpoints) -> None:
    if not pinned.exists:
        click.echo(
            f"warning: no checkpoints at {pinned.path}: events deleted from the end of a history, or a "
            "whole history, cannot be detected without them (run: pep checkpoint)",
            err=True,
        )


def _agrees_with(checkpoint_count: int) -> str:
    if not checkpoint_count:
        return ""
    return f", as its checkpoint{'s' if checkpoint_count > 1 else ''} recorded"


@click.command("history")
@click.argument("child_id")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the signed hash chain, and hold it to the checkpoints; exit 1 if it was tampered with.",
)
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=CHECKPOINT_FILE,
    help="The checkpoint file (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).",
)
@click.pass_obj
@fails_cleanly
def history_command(obj: Context, child_id, verify, checkpoint_file):
    """Show a child's history."""
    with obj.sessions() as session:
        pinned = _checkpoints(checkpoint_file) if verify else None
        if session.get(Child, child_id) is None and not (pinned and pinned.of(child_id)):
            raise PeopleError(f"no child {child_id}")
        if verify:
            assert pinned is not None  # read above when verifying
            result = history.verify(session, child_id, pinned)
            problems = [f"checkpoint file {pinned.path}, {p}" for p in pinned.problems] + result.problems
            if problems:
                click.echo(f"error: history of {child_id} FAILED verification:", err=True)
                for problem in problems:
                    click.echo(f"  {problem}", err=True)
                _warn_if_none(pinned)
                sys.exit(1)
            click.echo(
                f"history of {child_id} verified: {result.events} events, chain intact"
                f"{_agrees_with(result.checkpoints)}"
            )
            _warn_if_none(pinned)
            return
        for event in history.events(session, child_id):
            detail = event.data.get("name") or event.data.get("message") or event.data.get("process_id") or ""
            click.echo(f"#{event.seq:<4} {event.at:%Y-%m-%d %H:%M}  {event.kind:<18} {event.actor:<24} {detail}")


@click.command("verify")
@click.argument("child_ids", nargs=-1)
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=CHECKPOINT_FILE,
    help="The checkpoint file (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).",
)
@click.pass_obj
@fails_cleanly
def verify_command(obj: Context, child_ids, checkpoint_file):
    """Re-execute every child's history (or the named children's) and check it, signed chain and
    checkpoints included; exit 1 on any problem."""
    engine, failed, checked = Engine(), 0, 0
    pinned = _checkpoints(checkpoint_file)
    with obj.sessions() as session:
        ids = list(child_ids) or sorted(set(session.scalars(select(Child.id))) | set(pinned.by_child))
        for child_id in ids:
            if session.get(Child, child_id) is None and not pinned.of(child_id):
                raise PeopleError(f"no child {child_id}")
            result = replay_child(session, engine, child_id, pinned)
            checked += 1
            if result.ok:
                click.echo(f"{child_id}: ok, {len(result.frames)} events, {result.steps_checked} steps re-executed")
                continue
            failed += 1
            click.echo(f"{child_id}: FAILED", err=True)
            for problem in result.problems:
                click.echo(f"  {problem}", err=True)
    if pinned.problems:
        click.echo(f"checkpoint file {pinned.path}: FAILED", err=True)
        for problem in pinned.problems:
            click.echo(f"  {problem}", err=True)
    if failed or pinned.problems:
        if failed:
            click.echo(f"error: {failed} of {_children(checked)} failed verification", err=True)
        if pinned.problems:
            click.echo(f"error: the checkpoint file {pinned.path} failed verification", err=True)
        _warn_if_none(pinned)
        sys.exit(1)
    click.echo(f"{_children(checked)} verified: every step re-executed to the stored state, every chain intact")
    _warn_if_none(pinned)


@click.command("checkpoint")
@click.option(
    "--file",
    "path",
    type=CHECKPOINT_FILE,
    help="The checkpoint file to append to (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).",
)
@click.pass_obj
@fails_cleanly
def checkpoint_command(obj: Context, path):
    """Sign the head of every child's history that moved since its last checkpoint, and append it to
    the checkpoint file (kept outside the database); a history that does not verify is not signed."""
    run = checkpoints.write(obj.sessions, SystemClock().now(), path)
    for child_id, problems in run.refused.items():
        click.echo(f"{child_id}: FAILED verification, not checkpointed", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
    for child_id in run.missing:
        click.echo(f"{child_id}: checkpointed before, but not in the database: their history was deleted", err=True)
    for problem in run.file_problems:
        click.echo(f"checkpoint file {run.path}, {problem}", err=True)
    click.echo(
        f"{_children(len(run.written))} checkpointed, {run.unchanged} unchanged since their last "
        f"checkpoint, in {run.path}"
    )
    if not run.ok:
        sys.exit(1)


def _children(count: int) -> str:
    return f"{count} child" if count == 1 else f"{count} children"


@click.group("history-key")
def history_key():
    """The keys that sign children's histories (PEP_HISTORY_KEY, else instance/history_key)."""


@history_key.command("show")
@click.pass_obj
@fails_cleanly
def history_key_show(_obj: Context):
    """Say where the keys come from and their ids (never the keys): the first signs, the others verify."""
    ring = history_keys.ring()
    if not ring.keys:
        raise ValueError(f"no history key ({ring.source}): one is made when the first event is written")
    click.echo(f"history keys from {ring.source}")
    for index, key in enumerate(ring.keys):
        click.echo(f"  {key.id}  {'signs new events and checkpoints' if index == 0 else 'verifies what it signed'}")


@history_key.command("rotate")
@click.pass_obj
@fails_cleanly
def history_key_rotate(_obj: Context):
    """Make a new key that signs from now on; the old ones stay in the file to verify what they signed."""
    key = history_keys.rotate()
    click.echo(
        f"new history key {key.id} in {history_keys.key_file()}: it signs from now on (the older keys "
        "stay, to verify what they signed); copy the file to where its backups are kept"
    )
