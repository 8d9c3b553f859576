"""The faults a council's server meets: a database connection terminated under the timer sweep or under
a person's submission (a failover, a restart, an idle timeout), and a sweeper process killed mid-sweep.
Nothing is lost, nothing is applied twice, and no healthy PEP is recorded as an incident.

The sweep is driven through the real command, `pep scheduler --once --now ...`."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from engine import cli_common, timers
from engine import clock as clocks
from engine.cli import main
from engine.clock import FrozenClock, SystemClock
from engine.db import Retry, session_factory
from engine.deploy import Bundle, deploy
from engine.models import Event, Incident, Instance, OpenTask
from engine.people import add_child, add_user, set_case_team
from engine.roles import seed_roles
from engine.runtime import Step

from .conftest import BASIC_BUNDLE, PG_URL
from .test_runtime import MEETING, only_task, start_review

postgres_only = pytest.mark.skipif(
    not PG_URL,
    reason="a database connection to lose is PostgreSQL's (SQLite runs in the process): set PEP_TEST_DATABASE_URL",
)


# ---- the faults ---------------------------------------------------------------------------------


def terminate(db, *, pid: int | None = None, named: str | None = None) -> int:
    """Terminate database backends as PostgreSQL does on a failover or an idle timeout (by backend
    pid, or every one whose connection is `named`); return once they are gone, their locks released."""
    with db.connect() as admin:
        pids = (
            [pid]
            if pid
            else admin.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name AND pid <> pg_backend_pid()"),
                {"name": named},
            ).all()
        )
        for each in pids:
            assert admin.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": each})
        admin.commit()
    return len(pids)


def terminated_mid_step(db, monkeypatch, step: int = 1) -> list[int]:
    """Terminate the connection of the `step`th step to be saved, after it ran and before it writes."""
    saves, done, original = [], [], Step.save

    def save(self, *args, **kwargs):
        saves.append(self)
        if len(saves) == step:
            done.append(terminate(db, pid=self.session.scalar(text("SELECT pg_backend_pid()"))))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Step, "save", save)
    return done


# ---- the real commands --------------------------------------------------------------------------


@pytest.fixture
def pep(db, monkeypatch, clock):
    """`pep(*args)` runs the real `pep` command in this process on the test database, at the test's time."""
    monkeypatch.setattr(SystemClock, "now", lambda self: clock.now())
    opened, real_make_db = [], cli_common.make_db

    def make_db(*args, **kwargs):
        opened.append(real_make_db(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(cli_common, "make_db", make_db)
    engine_log, sigterm = logging.getLogger("engine"), signal.getsignal(signal.SIGTERM)
    level = engine_log.level
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    yield lambda *args: runner.invoke(main, ["--database", db.url.render_as_string(hide_password=False), *args])
    for each in opened:  # what the end of a real `pep` process does
        each.dispose()
    engine_log.setLevel(level)
    signal.signal(signal.SIGTERM, sigterm)


def sweep_once(pep, clock, processes: int = 1):
    return pep("scheduler", "--once", "--now", clock.now().isoformat(), "--processes", str(processes))


def fired_once_each(sessions, ids) -> None:
    """Every instance's timer fired exactly once, and no incident was recorded."""
    with sessions() as s:
        fired = dict(
            s.execute(
                select(Event.instance_id, func.count()).where(Event.kind == "timer_fired").group_by(Event.instance_id)
            ).all()
        )
        assert {i: fired.get(i, 0) for i in ids} == dict.fromkeys(ids, 1)
        assert s.scalars(select(Incident.message)).all() == []
        assert {i.status for i in s.scalars(select(Instance).where(Instance.id.in_(ids)))} == {"completed"}


@pytest.fixture
def due(deployed, engine, council, clock):
    """Six reviews' timers due, across two children."""
    with council.begin() as s:
        children = ["C001", "C002"] + [add_child(s, f"C1{n:02d}", f"Child {n}").id for n in range(4)]
        # one PEP of a kind runs for a child at a time (engine/caselife.py): six children
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in children]
    clock.advance(days=2)
    return ids


# ---- the sweep ----------------------------------------------------------------------------------


@postgres_only
def test_a_connection_lost_between_two_instances_is_tried_again_and_every_timer_fires_once(
    due, council, db, clock, pep, monkeypatch, caplog
):
    """The sweeper's idle connection is terminated before its third instance: that instance is taken
    again on a fresh connection, never recorded as an incident with its timers stopped."""
    taken, original = [], timers._fire

    def fire(*args):
        taken.append(args[2])
        if len(taken) == 3:
            assert terminate(db, named="pep scheduler") == 1  # the sweeper's pooled connection, idle
        return original(*args)

    monkeypatch.setattr(timers, "_fire", fire)
    result = sweep_once(pep, clock)
    assert result.exit_code == 0, result.output + result.stderr
    assert "6 timers fired; 6 instances handled; 0 still due; 0 incidents" in result.stdout
    fired_once_each(council, due)
    lost = [r.getMessage() for r in caplog.records if "connection was lost" in r.getMessage()]
    assert lost == [
        f"timer sweep, instance {taken[2]}: the database connection was lost (terminating connection "
        "due to administrator command); trying again on a fresh connection in 0.1 s"
    ]


@postgres_only
def test_a_connection_lost_mid_step_is_tried_again_and_every_timer_fires_once(
    due, council, db, clock, pep, monkeypatch
):
    """The connection is terminated while the third instance's step holds its row lock: nothing of
    that step was committed, so it runs again on a fresh connection."""
    terminated = terminated_mid_step(db, monkeypatch, step=3)
    result = sweep_once(pep, clock)
    assert result.exit_code == 0, result.output + result.stderr
    assert terminated == [1]
    assert "6 timers fired; 6 instances handled; 0 still due; 0 incidents" in result.stdout
    assert "1 lost connections tried again" in result.stdout
    fired_once_each(council, due)


@postgres_only
def test_a_database_that_stays_lost_stops_the_sweep_with_one_line_and_pauses_no_timer(
    due, council, db, clock, pep, monkeypatch
):
    """Every attempt loses its connection: the sweep gives up after a bounded number of tries, says so in
    one line, records no incident and leaves every timer due for the next sweep."""
    original_try_again, original_save, down = timers.try_again, Step.save, [True]

    def try_again(*args, **kwargs):
        return original_try_again(*args, **kwargs, retry=Retry(attempts=3, first_wait=0.01))

    def save(self, *args, **kwargs):
        if down:
            terminate(db, pid=self.session.scalar(text("SELECT pg_backend_pid()")))
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(timers, "try_again", try_again)
    monkeypatch.setattr(Step, "save", save)
    result = sweep_once(pep, clock)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: the sweep could not reach the database (see the log)"]
    with council() as s:
        assert s.scalars(select(Incident)).all() == []
        assert all(i.next_timer_at is not None for i in s.scalars(select(Instance)))

    down.clear()  # the database is back: the next sweep fires them all
    assert "6 timers fired; 6 instances handled; 0 still due; 0 incidents" in sweep_once(pep, clock).stdout
    fired_once_each(council, due)


# ---- a person's submission ----------------------------------------------------------------------


@postgres_only
def test_a_completion_whose_connection_is_terminated_fails_in_one_line_and_the_next_try_succeeds(
    deployed, engine, council, db, pep, monkeypatch
):
    instance_id = start_review(engine, council)
    task = only_task(council)
    terminated = terminated_mid_step(db, monkeypatch, step=1)  # this completion's; not the next one's
    failed = pep("complete", task.id, "--as", "sw@demo.test", "--data", json.dumps(MEETING))
    assert terminated == [1]
    assert failed.exit_code == 1 and failed.stdout == ""
    url = db.url.render_as_string(hide_password=True)
    assert failed.stderr.splitlines() == [
        f"error: the connection to the database at {url} was lost (terminating connection due to administrator "
        "command); run the command again"
    ]
    with council() as s:  # nothing of the step was applied
        assert s.get(Instance, instance_id).version == 1
        assert s.get(OpenTask, task.id) is not None

    again = pep("complete", task.id, "--as", "sw@demo.test", "--data", json.dumps(MEETING))
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith(f"completed; instance {instance_id} is running")
    assert only_task(council).name == "Complete the PEP"


# ---- a sweeper process killed -------------------------------------------------------------------

COPIES = 200


@pytest.fixture
def many_due(db):
    """A council whose 202 timers are due at once: two started reviews and copies of them (copies have no
    history of their own to replay, so this fixture stands apart from `council`)."""
    from benchmarks.bulk import copy_instances

    sessions, clock = session_factory(db), FrozenClock("2026-03-02T09:00:00+00:00")
    with clocks.using(clock), sessions.begin() as s:
        seed_roles(s)
        add_user(s, "sw@demo.test", "Sam Social-Worker")
        for child_id in ("C001", "C002"):
            add_child(s, child_id, "Alex Example", date(2014, 5, 1), "Oak Primary")
            set_case_team(s, child_id, {"Social Worker": "sw@demo.test"})
        deploy(s, Bundle.from_dirs(BASIC_BUNDLE), actor="owner@demo.test")
    from engine.runtime import Engine

    engine = Engine(clock)
    with sessions.begin() as s:
        for child_id in ("C001", "C002"):
            engine.start(s, "test_fragile", child_id, data={"divisor": 2})
    copy_instances(sessions, COPIES, with_timer=True, prefix="K")
    clock.advance(days=2)
    with sessions() as s:
        ids = s.scalars(select(Instance.id)).all()
    return sessions, clock, ids


def sweeper_processes(parent: int) -> list[int]:
    """The sweeper processes of a `pep scheduler` (its spawned children, not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the sweeper processes in /proc (Linux)")
def test_a_sweeper_process_killed_mid_sweep_is_replaced_and_the_sweep_completes(many_due, pep):
    sessions, clock, ids = many_due
    killed = []
    killer = threading.Thread(target=lambda: killed.append(kill_a_sweeper_mid_sweep(os.getpid(), sessions)))
    killer.start()
    try:
        result = pep("scheduler", "--once", "--now", clock.now().isoformat(), "--processes", "2")
    finally:
        killer.join()
    assert killed and 0 < killed[0] < len(ids), "the sweeper was not killed mid-sweep"
    assert result.exit_code == 0, result.output + result.stderr
    assert "; 0 still due; 0 incidents" in result.stdout and "1 sweeper processes replaced" in result.stdout
    fired_once_each(sessions, ids)


def kill_a_sweeper_mid_sweep(scheduler: int, sessions, seconds: float = 60) -> int | None:
    """Kill -9 one sweeper process once some timers have fired; return how many had (None: never)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions() as s:
            fired = s.scalar(select(func.count()).select_from(Event).where(Event.kind == "timer_fired"))
        sweepers = sweeper_processes(scheduler)
        if fired >= 10 and sweepers:
            os.kill(sweepers[0], signal.SIGKILL)
            return fired
        time.sleep(0.01)
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the sweeper processes in /proc (Linux)")
def test_a_sweeper_process_that_died_between_sweeps_is_replaced_at_the_next_one(deployed, engine, council, clock, db):
    with council.begin() as s:
        children = ["C001", "C002"] + [add_child(s, f"C1{n:02d}", f"Child {n}").id for n in range(4)]
        # one PEP of a kind runs for a child at a time (engine/caselife.py): six children
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in children]
    with timers.SweeperPool(db.url.render_as_string(hide_password=False), 2, clock) as pool:
        assert pool.sweep().instances == 0  # nothing due yet: the processes start
        os.kill(sweeper_processes(os.getpid())[0], signal.SIGKILL)  # killed while it waits for work
        time.sleep(0.5)
        clock.advance(days=2)
        result = pool.sweep()
    assert (result.instances, result.replaced, result.incidents) == (len(ids), 1, [])
    fired_once_each(council, ids)


def test_a_scheduler_whose_sweepers_keep_dying_exits_non_zero_for_its_service_manager(pep, monkeypatch):
    class DyingSweepers:  # what SweeperPool raises once it has replaced its processes MAX_REPLACEMENTS times
        def __init__(self, *_args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *_exc):
            pass

        def sweep(self, _now):
            raise timers.SweepersFailed("sweeper processes died 4 times in one sweep")

    monkeypatch.setattr(timers, "SweeperPool", DyingSweepers)
    result = pep("scheduler", "--processes", "2", "--interval", "3600")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["error: sweeper processes died 4 times in one sweep"]
