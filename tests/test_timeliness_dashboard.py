"""The oversight dashboard's figures (engine/oversight.py, read from the PEP projection the steps keep
and the children's records) equal the same figures counted from the children's histories
(engine/timeliness.py), for every academic year and term, after a short simulated autumn of a small
council in which children come into care; and every overdue step is escalated within 1 working day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from benchmarks.run import ROOT, dashboard_lines, escalation_line, fresh_database
from benchmarks.simulate import Simulation
from engine import dashboardcheck, timeliness
from engine.db import session_factory
from engine.models import Event


def test_the_dashboard_figures_equal_the_figures_from_history_and_escalations_come_within_a_working_day(tmp_path):
    sessions = session_factory(fresh_database(f"sqlite:///{tmp_path / 'autumn.sqlite'}"))
    simulation = Simulation(sessions, ROOT, 40, date(2025, 9, 1), date(2025, 11, 14), seed=7, progress=False)
    simulation.set_up()
    simulation.run()
    now = simulation.engine.now()

    with sessions() as session:
        compared = dashboardcheck.against_dashboard(session, now)
        escalations = timeliness.escalations(timeliness.read_records(session), now)
        entered = session.scalar(select(func.count()).select_from(Event).where(Event.kind == "entered_care"))

    assert all(c.equal for c in compared), "\n".join(dashboard_lines(compared))
    figures = {c.period: dict((name, shown) for name, shown, _counted in c.figures) for c in compared}
    autumn, last_year = figures["Autumn term 2025-26"], figures["Academic year 2024-25"]
    assert entered > 0 and autumn["initial_due"] > 0 and autumn["initial_started"] > 0  # children came into care
    assert autumn["due"] >= autumn["on_time"] > 0 and autumn["reviewed@2025-26 autumn"] > 0
    assert 0 < last_year["children"] < autumn["children"]  # those who came into care this autumn were not in care then
    assert escalations.escalated > 0 and escalations.days[-1] <= 1, escalation_line(escalations)
    assert escalations.unescalated_steps == 0, escalation_line(escalations)
