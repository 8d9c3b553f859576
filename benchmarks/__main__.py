"""`python -m benchmarks year|inbox|sweep|faults|web|import`: the simulated council year, the sweep under faults,
the web load run and a council's first import (see docs/benchmarks.md)."""

from __future__ import annotations

from datetime import date

import click

from .run import report, run_year, school_year


@click.group()
def main():
    """Benchmarks of the PEP engine and web app."""


@main.command()
@click.option(
    "--database",
    "url",
    default="sqlite:///instance/bench.sqlite",
    show_default=True,
    help="Database URL; it is emptied first (SQLite file or a PostgreSQL bench_* database).",
)
@click.option("--children", default=1000, show_default=True, help="Children in the synthetic council.")
@click.option("--start", default="2025-09-01", show_default=True, help="First simulated day.")
@click.option("--weeks", type=int, help="Simulate this many weeks instead of the school year to 31 July.")
@click.option("--open-instances", default=100_000, show_default=True, help="Open instances for the inbox queries.")
@click.option("--due-timers", default=10_000, show_default=True, help="Timers due at once for the sweep.")
@click.option(
    "--sweepers",
    type=int,
    help="Also time the sweep with this many processes sharing it [default: one per CPU, as `pep scheduler`].",
)
@click.option("--seed", default=2025, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def year(url, children, start, weeks, open_instances, due_timers, sweepers, seed, quiet):
    """Simulate a school year of a synthetic council and print the figures."""
    first, last = school_year(date.fromisoformat(start), weeks)
    figures = run_year(
        url, children, first, last, open_instances, due_timers, seed=seed, progress=not quiet, sweepers=sweepers
    )
    click.echo(report(figures))


@main.command()
@click.option(
    "--database",
    "url",
    default="sqlite:///instance/bench-oversight.sqlite",
    show_default=True,
    help="Database URL; it is emptied and grown first (SQLite file or a PostgreSQL bench_* database).",
)
@click.option("--instances", default=20_000, show_default=True, help="Copies of running PEPs to grow it with.")
@click.option(
    "--year-children", default=10_000, show_default=True, help="Other children, each with a year of completed PEPs."
)
@click.option("--repeats", default=20, show_default=True, help="Times each page is asked for.")
@click.option("--no-grow", is_flag=True, help="Measure the database as a previous run left it.")
@click.option("--page", "pages", multiple=True, help="Measure only this page (repeatable) [default: every page].")
def oversight(url, instances, year_children, repeats, no_grow, pages):
    """Grow a database with many PEPs and print each oversight page's and export's p50 and p95."""
    from .oversight import grow, measure

    if not no_grow:
        grow(url, instances, year_children)
    for page, (p50, p95, size) in measure(url, repeats, pages or None).items():
        click.echo(f"{page:90s} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   {size / 1024:.0f} kB")


@main.command()
@click.option("--database", "url", required=True, help="A database a `year` run has filled.")
def inbox(url):
    """Time the inbox queries again on a database a `year` run left behind (nothing is changed)."""
    from datetime import UTC, datetime

    from engine.db import make_db, session_factory

    from .run import inboxes, open_instance_count

    sessions = session_factory(make_db(url))
    for who, (p50, p95, rows) in inboxes(sessions, datetime.now(UTC)).items():
        click.echo(
            f"inbox, {who:22s} p50 {p50:.1f} ms   p95 {p95:.1f} ms   ({rows} rows; "
            f"{open_instance_count(sessions)} open instances)"
        )


@main.command()
@click.option("--database", "url", required=True, help="A database a `year` run has filled.")
@click.option("--due-timers", default=10_000, show_default=True, help="Timers due at once for the sweep.")
@click.option("--sweepers", type=int, help="Also time the sweep with this many processes [default: one per CPU].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(url, due_timers, sweepers, quiet):
    """Time the timer sweep again on a database a `year` run left behind (it adds the due copies)."""
    from .run import sweep_again, sweep_lines

    for line in sweep_lines(sweep_again(url, due_timers, sweepers, progress=not quiet)):
        click.echo(line)


@main.command()
@click.option(
    "--database",
    "url",
    required=True,
    help="A PostgreSQL database (bench_*); a `year` run's is used as it is, an empty one is filled first.",
)
@click.option(
    "--due-timers", default=6000, show_default=True, help="Copies of waiting instances whose timers fall due at once."
)
@click.option("--sweepers", default=2, show_default=True, help="Processes of `pep scheduler` sharing the sweep.")
@click.option(
    "--terminate-every",
    default=2.0,
    show_default=True,
    help="Seconds between terminations of every sweeper's database connection.",
)
@click.option(
    "--kill-at",
    default=0.3,
    show_default=True,
    help="Kill -9 one sweeper process once this share of the due timers has fired.",
)
@click.option(
    "--children", default=300, show_default=True, help="Children of the council an empty database is filled with."
)
@click.option("--weeks", default=2, show_default=True, help="Weeks that council is played for.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def faults(url, due_timers, sweepers, terminate_every, kill_at, children, weeks, quiet):
    """Sweep thousands of due timers through `pep scheduler` while its connections are terminated and one of
    its processes is killed; print what was lost, applied twice or made a false incident (each should be 0)."""
    from .faults import report, run_faults

    try:
        figures = run_faults(url, due_timers, sweepers, terminate_every, kill_at, children, weeks, progress=not quiet)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    for line in report(figures):
        click.echo(line)


@main.command()
@click.option(
    "--database",
    "url",
    default="sqlite:///instance/bench-web.sqlite",
    show_default=True,
    help="Database URL; it is emptied first.",
)
@click.option("--children", default=2500, show_default=True, help="Children of the council played up to today.")
@click.option("--weeks", default=2, show_default=True, help="Weeks played before the load starts.")
@click.option("--users", default=20, show_default=True, help="Concurrent simulated professionals.")
@click.option("--seconds", default=90.0, show_default=True, help="Longest the load runs.")
@click.option("--think", default=1.0, show_default=True, help="Seconds each user pauses between pages.")
@click.option("--port", default=8765, show_default=True)
def web(url, children, weeks, users, seconds, think, port):
    """Load the inbox page and task submissions under gunicorn (2 workers) and print the figures."""
    from .web import load, prepare

    jobs = prepare(url, children, weeks, date.today())
    click.echo(f"{len(jobs)} open tasks prepared for {len({j.email for j in jobs})} professionals")
    click.echo(load(url, jobs, users, seconds, port, think).report())


@main.command("import")
@click.option(
    "--database",
    "url",
    default="sqlite:///instance/bench-import.sqlite",
    show_default=True,
    help="Database URL; it is emptied first (SQLite file or a PostgreSQL bench_* database).",
)
@click.option("--children", default=10_000, show_default=True, help="Children in the extract.")
@click.option("--seed", default=2025, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress.")
def import_(url, children, seed, quiet):
    """Time a council's first import of its case system's extract, and the same file again."""
    from .importing import run

    click.echo(run(url, children, seed, progress=not quiet).report())


if __name__ == "__main__":
    main()
