"""A school year of a synthetic council, run through the engine with a moved clock.

Each simulated day at 08:00 the timer sweep runs; on working days the professionals then do the
tasks they planned for that day. Each task, when it appears, gets a planned day: most before their
deadline, some after it (late), and QA sometimes sends a PEP back. Every completion is timed through
the engine and, on the same state, through bare SpiffWorkflow.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from SpiffWorkflow.exceptions import WorkflowException
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.attachments import attachment_answers, store
from engine.calendar import default_calendar
from engine.clock import FrozenClock
from engine.deploy import Bundle, deploy
from engine.errors import EngineError
from engine.models import Attachment, Instance, OpenTask, User
from engine.runtime import Engine
from engine.timers import fire_due_timers

from . import council as councils
from .bare import BareRun
from .measure import Progress, Samples
from .professionals import NotYet, Professional

LATE_SHARE, VERY_LATE_SHARE = 0.04, 0.01
SAME_DAY_ROUNDS = 4  # a day's work: the tasks planned for it, then those its steps opened, and so on


@dataclass
class YearResult:
    engine: Samples = field(default_factory=Samples)
    bare: Samples = field(default_factory=Samples)
    engine_cpu: Samples = field(default_factory=Samples)
    bare_cpu: Samples = field(default_factory=Samples)
    ratios: list[float] = field(default_factory=list)
    sweeps: Samples = field(default_factory=Samples)
    tasks_done: int = 0
    refused: Counter = field(default_factory=Counter)
    timers_fired: int = 0
    incidents: int = 0
    days: int = 0


class Simulation:
    """Builds the council, deploys the shipped processes and plays the year."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        root,
        size: int,
        start: date,
        end: date,
        seed: int = 2025,
        progress: bool = True,
    ):
        self.sessions, self.root, self.size, self.start, self.end = sessions, root, size, start, end
        self.rng = random.Random(seed)
        self.clock = FrozenClock(_at(start, 7))
        self.engine = Engine(self.clock)
        self.calendar = default_calendar()
        self.professional = Professional(self.rng)
        self.progress = progress
        self.plan: dict[str, date] = {}
        self.forms: dict[str, dict] = {}
        self.emails: dict[int, str] = {}
        self.pools: dict[str, list[int]] = {}
        self.result = YearResult()

    def set_up(self) -> councils.Council:
        """Deploy processes/ and forms/ and insert the council."""
        with self.sessions.begin() as session:
            self.council = councils.build(session, self.size, self.start, self.rng)
            deployment, _ = deploy(session, Bundle.from_dirs(self.root), actor="bench@bench.test")
            self.forms = {
                f.path.removeprefix("forms/"): json.loads(f.content)
                for f in deployment.files
                if f.path.startswith("forms/")
            }
            for user in session.scalars(select(User)):
                self.emails[user.id] = user.email
                for key in user.role_keys:
                    self.pools.setdefault(key, []).append(user.id)
        return self.council

    def run(self) -> YearResult:
        """Play every day from start to end."""
        days = (self.end - self.start).days + 1
        bar = Progress(days, "simulated year", self.progress)
        arrivals = self._arrivals()
        for n in range(days):
            today = self.start + timedelta(days=n)
            self.clock.set(_at(today, 7))
            for child, message, data in arrivals.get(today, []):
                self._send(child, message, data)
            self.clock.set(_at(today, 8))
            with self.result.sweeps.timing():
                sweep = fire_due_timers(self.engine, self.sessions)
            self.result.timers_fired += sweep.timers_fired
            self.result.incidents += len(sweep.incidents)
            if self.calendar.is_working_day(today):
                self.clock.set(_at(today, 10))
                self._work(today)
            self.result.days = n + 1
            bar.update(n + 1, f"{today} tasks {self.result.tasks_done} timers {self.result.timers_fired}")
        bar.update(days, "", force=True)
        bar.close()
        return self.result

    def _arrivals(self) -> dict[date, list]:
        """Who starts what when: children in care start their PEP cycle in the first fortnight,
        the others enter care during the year."""
        arrivals: dict[date, list] = {}
        for child in self.council.children:
            if child.enters_care:
                day = child.enters_care
                setting = (
                    "school"
                    if child.school
                    else ("none" if child.date_of_birth > day - timedelta(days=730) else "early_years")
                )
                data = {
                    "entry": "emergency" if self.rng.random() < 0.3 else "planned",
                    "entered_care": day.isoformat(),
                    "education_setting": setting,
                    "review_variant": child.variant,
                    **({"school": child.school} if child.school else {}),
                }
                arrivals.setdefault(day, []).append((child.id, "child_becomes_looked_after", data))
            else:
                day = self.start + timedelta(days=self.rng.randint(0, 13))
                arrivals.setdefault(day, []).append(
                    (
                        child.id,
                        "pep_cycle_due",
                        {"variant": child.variant, "next_meeting_date": None, "previous_targets": []},
                    )
                )
        return arrivals

    def _send(self, child_id: str, message: str, data: dict) -> None:
        try:
            with self.sessions.begin() as session:
                self.engine.send_message(session, message, child_id, data, actor=self.council.first("admin"))
        except EngineError as exc:  # e.g. a deadline beyond the configured term dates: the sender is told
            self.result.refused[f"{message}: {str(exc)[:160]}"] += 1

    def _work(self, today: date) -> None:
        """Plan newly ready tasks, then do the ones planned for today or before; again for the tasks
        those steps opened (a task due today is done today, as its holder sees it in their inbox)."""
        tried: set[str] = set()
        for _ in range(SAME_DAY_ROUNDS):
            with self.sessions() as session:
                rows = session.execute(
                    select(
                        OpenTask.id,
                        OpenTask.ready_at,
                        OpenTask.due_at,
                        OpenTask.assignee_id,
                        OpenTask.pooled,
                        OpenTask.role_key,
                    )
                ).all()
            for task_id, ready_at, due_at, *_ in rows:
                if task_id not in self.plan:
                    self.plan[task_id] = self._planned_day(ready_at.date(), due_at.date() if due_at else None)
            live = {row[0] for row in rows}
            self.plan = {k: v for k, v in self.plan.items() if k in live}
            due = [row for row in rows if self.plan[row[0]] <= today and row[0] not in tried]
            if not due:
                return
            for task_id, _ready, _due, assignee, pooled, role in due:
                tried.add(task_id)
                self._do(task_id, assignee, pooled, role, today)

    def _planned_day(self, ready: date, due: date | None) -> date:
        """When the professional gets to it: usually before the deadline, sometimes after."""
        if due is None or due < ready:
            due = ready + timedelta(days=10)
        roll = self.rng.random()
        if roll < VERY_LATE_SHARE:
            return due + timedelta(days=self.rng.randint(8, 25))
        if roll < LATE_SHARE:
            return due + timedelta(days=self.rng.randint(1, 7))
        return ready + timedelta(days=self.rng.randint(0, max(0, (due - ready).days)))

    def _do(self, task_id: str, assignee: int | None, pooled: bool, role: str, today: date) -> None:
        if assignee is None:
            if not pooled or not self.pools.get(role):
                return  # nobody holds this role for the child: it waits, as it would in a council
            assignee = self.rng.choice(self.pools[role])
            try:
                with self.sessions.begin() as session:
                    self.engine.claim(session, task_id, self.emails[assignee])
            except EngineError:
                return  # withdrawn by an earlier step today (a message, a deadline)
        email = self.emails[assignee]
        with self.sessions() as session:
            task = session.get(OpenTask, task_id)
            if task is None:
                return  # withdrawn by an earlier step today
            instance = session.get(Instance, task.instance_id)
            bare = BareRun(self.engine, instance.definition, instance.state)
            form, version = task.form, instance.version
        spiff_task = bare.load(task_id)
        try:
            answers = self.professional.answers(self.forms.get(form, {}), dict(spiff_task.data), today)
        except NotYet as wait:
            self.plan[task_id] = wait.day  # the meeting is recorded once it has been held
            return
        try:
            bare.run(spiff_task, answers)
            with self.result.engine.timing(self.result.engine_cpu), self.sessions.begin() as session:
                self._attach(session, task.child_id, self.forms.get(form, {}), answers, email)
                self.engine.complete_task(session, task_id, email, answers, expected_version=version)
        except (EngineError, WorkflowException) as exc:
            self.result.refused[f"{form}: {str(exc)[:160]}"] += 1
            self.plan[task_id] = today + timedelta(days=1)  # the professional corrects it tomorrow
            return
        self.result.bare.append(bare.seconds)
        self.result.bare_cpu.append(bare.cpu_seconds)
        self.result.ratios.append(self.result.engine[-1] / bare.seconds)
        self.result.tasks_done += 1

    def _attach(self, session: Session, child_id: str, schema: dict, answers: dict, email: str) -> None:
        """Store a small file for each file the professional names, as the web app does when one is attached."""
        for _path, name in attachment_answers(schema, answers):
            if isinstance(name, str) and session.get(Attachment, name) is None:
                store(session, child_id, f"{name}.pdf", "application/pdf", b"%PDF-1.4", email, self.engine.now(), name)


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)
