"""The declarative base of every table, and the column types they share: timezone-aware UTC date-times
on every database, JSON (JSONB on PostgreSQL) and order-preserving JSON for workflow state and specs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONData = JSON().with_variant(JSONB(), "postgresql")
# SpiffWorkflow restores a workflow in the order its serialized keys were written; JSONB reorders
# keys, so workflow state and specs are kept as order-preserving JSON text on every database.
OrderedJSON = JSON()


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSONData, list: JSONData, date: Date}
