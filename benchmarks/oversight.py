"""`python -m benchmarks oversight`: the Virtual School's oversight pages on a database grown to many open
PEPs, each page's p95 as the VS administrator sees it (docs/benchmarks.md).

A few real PEPs are run by the engine (the statutory test processes: a termly review and an initial
PEP), then copied by benchmarks/bulk.py; each copy gets a projection row like its source's, with its
due date, meeting and sign-off spread over the school year (on time, late, overdue and not yet due),
as the steps would have written them. Then each page is asked for through the app, in process.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import bindparam, insert, select, text

from engine import clock as clocks
from engine.db import make_db, session_factory
from engine.deploy import Bundle, deploy
from engine.models import Base, Child, Instance, PepProjection, ProcessDefinition, User
from engine.people import add_child, add_user
from engine.roles import seed_roles
from engine.runtime import Engine

from .bulk import copy_instances
from .measure import Samples

BUNDLES = ("tests/bundles/basic", "tests/bundles/statutory")
NOW = "2026-03-02T09:00:00+00:00"
SCHOOLS = [f"School {n}" for n in range(120)]
PAGES = (
    "/oversight/timeliness",
    "/oversight/timeliness?period=2025-26",
    "/oversight/timeliness?period=2025-26&by=school",
    "/oversight/timeliness?period=2025-26&by=social_worker",
    "/oversight/timeliness?period=2025-26&by=social_worker&page=2",
    "/oversight/timeliness?period=2025-26&by=social_worker&q=worker+12",
    "/oversight/timeliness?period=2025-26&by=age_band",
    "/oversight/timeliness/children?period=2025-26&figure=overdue&by=school&value=School+7",
    "/oversight/overdue?days=30",
    "/oversight/overdue?school=School+7",
)


def grow(url: str, instances: int, seed: int = 2026) -> None:
    """An empty database filled: staff, 40 children with real PEPs, then `instances` copies of them."""
    db = make_db(url)
    Base.metadata.drop_all(db)
    Base.metadata.create_all(db)
    sessions, clock = session_factory(db), clocks.FrozenClock(NOW)
    engine = Engine(clock)
    with clocks.using(clock), sessions.begin() as s:
        seed_roles(s)
        add_user(s, "sw@bench.test", "Sam Social-Worker")
        add_user(s, "dt@bench.test", "Dana Teacher")
        add_user(s, "admin@bench.test", "Ash Administrator", roles=["VS Administrator"])
        for bundle in BUNDLES:
            deploy(s, Bundle.from_dirs(bundle), actor="owner@bench.test")
        from tests.conftest import seat_case_team

        for n in range(40):
            add_child(s, f"R{n:03d}", f"Real child {n}", date(2010 + n % 12, 1 + n % 12, 1), SCHOOLS[n % len(SCHOOLS)])
            seat_case_team(s, f"R{n:03d}", {"Social Worker": "sw@bench.test", "Designated Teacher": "dt@bench.test"})
    with sessions.begin() as s:
        for n in range(40):
            engine.start(
                s,
                "test_termly" if n % 4 else "test_initial_own_timer",
                f"R{n:03d}",
                actor="sw@bench.test",
                data={"entered_care": "2026-02-23"},
            )
    copy_instances(sessions, instances, with_timer=False, prefix="B")
    _project_copies(sessions, random.Random(seed))
    if db.dialect.name == "postgresql":  # the statistics autovacuum would gather: plans for the grown tables
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def _project_copies(sessions, rng: random.Random) -> None:
    """A projection row for each copied instance, like its source's, with dates spread over the year."""
    with sessions.begin() as s:
        templates = {row.process_id: row for row in s.scalars(select(PepProjection))}
        known = set(s.scalars(select(PepProjection.instance_id)))
        copies = s.execute(select(Instance.id, Instance.child_id, Instance.definition_id)).all()
        processes = dict(s.execute(select(ProcessDefinition.id, ProcessDefinition.process_id)).all())
    rows, schools = [], []
    start = date(2025, 9, 3)
    for instance_id, child_id, definition_id in copies:
        if instance_id in known:
            continue
        source = templates[processes[definition_id]]
        due = _moment(start + timedelta(days=rng.randrange(0, 300)))
        fate = rng.random()
        signed = None if fate < 0.3 else due - timedelta(days=rng.randrange(-20, 40))
        row = {c.key: getattr(source, c.key) for c in PepProjection.__table__.columns}
        row.update(
            instance_id=instance_id,
            child_id=child_id,
            due_at=due,
            signed_off_at=signed,
            on_time=None if signed is None else signed <= due,
            held_on=(due - timedelta(days=10)).date(),
        )
        rows.append(row)
        schools.append({"b_id": child_id, "school": rng.choice(SCHOOLS)})
    with sessions.begin() as s:
        for at in range(0, len(rows), 2000):
            s.execute(insert(PepProjection), rows[at : at + 2000])
        table = Child.__table__
        s.connection().execute(table.update().where(table.c.id == bindparam("b_id")), schools)


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(22, 59, 59), tzinfo=UTC)


def measure(url: str, repeats: int = 20) -> dict[str, tuple[float, float, int]]:
    """Each oversight page asked for `repeats` times by the VS administrator: (p50, p95 ms, bytes)."""
    from webui import create_app
    from webui.auth import hash_password

    sessions = session_factory(make_db(url))
    with sessions.begin() as s:
        s.scalar(select(User).where(User.email == "admin@bench.test")).password_hash = hash_password("bench-password")
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "SESSION_COOKIE_SECURE": False,
            "CLOCK": clocks.FrozenClock("2026-07-01T09:00:00+00:00"),
            "WTF_CSRF_ENABLED": False,
        }
    )
    client = app.test_client()
    client.post("/sign-in", data={"email": "admin@bench.test", "password": "bench-password"})
    found = {}
    for page in PAGES:
        samples, size = Samples(), 0
        for _ in range(repeats):
            with samples.timing():
                response = client.get(page)
            assert response.status_code == 200, (page, response.status_code)
            size = len(response.data)
        found[page] = (samples.ms(50), samples.ms(95), size)
    return found
