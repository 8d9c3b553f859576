"""The benchmark cannot rot: a tiny council for a few weeks completes real tasks and every figure is reported.
No timings are checked here; the figures are for docs/benchmarks.md (see `make bench`)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from benchmarks.run import report, run_year
from engine.db import make_db, session_factory
from engine.models import Instance, ProcessDefinition


def test_a_tiny_council_runs_a_few_weeks_and_every_figure_is_reported(tmp_path):
    figures = run_year(
        f"sqlite:///{tmp_path / 'bench.sqlite'}",
        children=12,
        start=date(2025, 9, 1),
        end=date(2025, 9, 28),
        open_instances=300,
        due_timers=40,
        progress=False,
    )

    assert figures.tasks > 0 and figures.timers_fired_in_year > 0 and figures.incidents == 0
    assert figures.engine_p50 > 0 and figures.bare_p50 > 0 and figures.ratio_of_p50s > 0
    assert set(figures.inbox) == {"designated teacher", "VS education adviser"}
    assert figures.open_instances >= 300 and figures.sweep_timers >= 40 and figures.sweep_rate > 0
    assert figures.kb_per_child_year > 0 and figures.peak_memory_mb > 0
    printed = report(figures)
    for line in (
        "task completion, engine",
        "bare SpiffWorkflow",
        "engine / bare",
        "inbox, designated teacher",
        "inbox, VS education adviser",
        "timer sweep",
        "per child-year",
        "peak memory",
        "PEPs ",
        "initial PEPs in 20 work days",
        "reviews, 2025-26 autumn",
        "stuck PEPs at the end",
        "tasks without a person",
        "tasks late on first completion",
        "overdue tasks told in time",
        "escalation of overdue steps",
        "oversight, Autumn term 2025-26",
        "repeats per task",
    ):
        assert line in printed
    assert "within every deadline" not in printed
    assert figures.statutory.peps_started > 0 and figures.statutory.terms[0].reviewed.of > 0
    assert figures.dashboard and all(c.equal for c in figures.dashboard), printed


def test_a_sweep_with_no_timers_due_prints_no_rate():
    from benchmarks.run import sweep_lines

    assert sweep_lines({1: (0, 0.0), 2: (40, 0.5)}) == [
        "timer sweep, 1 sweeper        no timers were due",
        "timer sweep, 2 sweepers       40 timers in 0.5 s = 80 timers/s",
    ]


def test_two_sweeper_processes_share_the_sweep_and_both_sweeps_are_reported(tmp_path):
    figures = run_year(
        f"sqlite:///{tmp_path / 'bench.sqlite'}",
        children=12,
        start=date(2025, 9, 1),
        end=date(2025, 9, 21),
        open_instances=100,
        due_timers=30,
        progress=False,
        sweepers=2,
    )

    assert set(figures.sweeps) == {1, 2}
    assert all(fired >= 30 for fired, _seconds in figures.sweeps.values())
    printed = report(figures)
    assert "timer sweep, 1 sweeper " in printed and "timer sweep, 2 sweepers" in printed


def test_the_web_run_serves_a_tiny_council_under_gunicorn_and_reports_every_figure(tmp_path):
    import socket
    from datetime import date as day

    import pytest

    pytest.importorskip("gunicorn")
    from benchmarks.web import load, prepare

    url = f"sqlite:///{tmp_path / 'web.sqlite'}"
    jobs = prepare(url, children=12, weeks=2, today=day.today())
    assert jobs
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    figures = load(url, jobs, users=2, seconds=20, port=port, think=0, threads=2)

    assert len(figures.submit) > 0 and len(figures.inbox) > 0
    assert 0 < len(figures.sign_in) <= len({job.email for job in jobs})  # one sign-in per professional at most
    assert figures.errors == {}  # a refused submission (409) is counted as a real or a false conflict instead
    assert not {kind for kind in figures.conflicts if kind.startswith("false")}
    printed = figures.report()
    for line in (
        "inbox page",
        "task submission",
        "sign-in",
        "sign-ins per submission",
        "x 2 threads (gthread)",
        "false conflicts",
        "real conflicts",
    ):
        assert line in printed


def test_the_fault_run_sweeps_a_tiny_council_under_faults_and_reports_every_figure():
    """`python -m benchmarks faults` on a tiny council: whatever the faults hit, nothing is lost, applied
    twice or made an incident (the figures themselves are for docs/benchmarks.md)."""
    import os

    import pytest
    from sqlalchemy import text

    from benchmarks.faults import report, run_faults
    from engine.db import make_db

    from .conftest import PG_URL

    if not PG_URL:
        pytest.skip("the fault run terminates PostgreSQL connections: set PEP_TEST_DATABASE_URL")
    name = f"bench_faults_test_{os.getpid()}"
    server = make_db(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = server.url.set(database=name).render_as_string(hide_password=False)
    try:
        figures = run_faults(
            url, due=40, sweepers=2, terminate_every=0.5, kill_at=0.3, children=12, weeks=3, progress=False
        )
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()

    assert figures.due >= 40 and figures.faulted.exit_status == 0 and figures.later.exit_status == 0
    assert (figures.lost, figures.duplicated, figures.timers_fired_twice, figures.false_incidents) == (0, 0, 0, 0)
    assert figures.chains > 0 and figures.chains_broken == 0
    printed = "\n".join(report(figures))
    for line in (
        "faults ",
        "the faulted sweep",
        "a later sweep",
        "lost ",
        "duplicated ",
        "false incidents",
        "histories",
    ):
        assert line in printed


def test_the_import_benchmark_imports_a_tiny_extract_and_the_same_file_again_changes_nothing(tmp_path):
    from benchmarks.importing import run

    figures = run(f"sqlite:///{tmp_path / 'import.sqlite'}", children=60, progress=False)
    printed = figures.report()
    assert "import of 60 children: 60 children added" in printed
    assert "(60 left alone, 0 changed, 0 started)" in printed and "dry run (read + plan)" in printed


def test_a_term_of_every_variant_goes_round_no_loop_and_leaves_no_pep_stuck(tmp_path):
    """The simulated professionals take an autumn term of every PEP variant (and children coming into
    care): no task is done over and over, no task waits for nobody, no PEP is stuck at the end."""
    figures = run_year(
        f"sqlite:///{tmp_path / 'term.sqlite'}",
        children=60,
        start=date(2025, 9, 1),
        end=date(2025, 12, 19),
        open_instances=0,
        due_timers=0,
        progress=False,
        sweepers=1,
    )
    s = figures.statutory
    with session_factory(make_db(f"sqlite:///{tmp_path / 'term.sqlite'}"))() as session:
        variants = set(session.scalars(select(ProcessDefinition.process_id).join(Instance).distinct()))
    assert {"pep_review", "ppg_review", "all_ages_review", "post16", "word_form_review", "initial_pep"} <= variants
    assert s.repeats.most <= 3, s.repeats.worst
    assert s.open.stuck == 0 and s.needed_a_person == 0 and s.open_without_person == 0
    assert figures.refused_forms == 0 and figures.incidents == 0
