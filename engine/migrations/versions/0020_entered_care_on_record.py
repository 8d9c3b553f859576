"""the day a child came into care on their record, and in their initial PEPs' projection

A report of coming into care now records the day on the child's record (`child.entered_care`, which
the oversight pages read: whether the child was in care in a past term), and the initial PEP it starts
is projected again once the report's `entered_care` event is written (its 10 and 20 working days).
Before, neither was: the record kept no day, and every such initial PEP said "date entered care not
recorded". Here both are filled in from the histories: the day of each child's last `entered_care`
event where the record has none, and the row of each initial PEP with no day recomputed from history
(engine/oversight.py `recompute`, as `pep oversight-rebuild`).

Revision ID: 0020
Revises: 0019
Create Date: 2027-01-20 10:00:00.000000
"""

from datetime import date

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from engine import projection
    from engine.models import Child, Event, PepProjection

    with Session(bind=op.get_bind()) as session:
        without = set(session.scalars(select(Child.id).where(Child.entered_care.is_(None))))
        last: dict[str, date] = {}
        for child_id, data in session.execute(
            select(Event.child_id, Event.data).where(Event.kind == "entered_care").order_by(Event.child_id, Event.seq)
        ):
            if child_id in without and (data or {}).get("date"):
                last[child_id] = date.fromisoformat(str(data["date"])[:10])
        for child_id, day in last.items():
            session.execute(Child.__table__.update().where(Child.__table__.c.id == child_id).values(entered_care=day))
        for instance_id in session.scalars(
            select(PepProjection.instance_id).where(
                PepProjection.kind == "initial", PepProjection.entered_care.is_(None)
            )
        ).all():
            row = projection.recompute(session, instance_id)
            if row is not None and row.get("entered_care") is not None:
                session.execute(projection.UPDATE_PROJECTION, {"pep_instance_id": instance_id, **row})
        session.flush()


def downgrade() -> None:
    pass  # the days filled in are what the histories say; nothing to undo
