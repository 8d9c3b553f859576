"""Alembic environment: migrates the database named by the config's sqlalchemy.url."""

from alembic import context

from engine.db import make_db
from engine.models import Base

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    db = make_db(config.get_main_option("sqlalchemy.url"))
    with db.connect() as connection:
        _run(connection)
    db.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


run_migrations_online()
