"""Alembic environment: runs the plain-SQL migrations in ``versions/`` on one connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "extsched.db.migrate sets sqlalchemy.url"

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        # Serialize concurrent `extsched migrate` / `serve` starts on one database.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        context.run_migrations()
engine.dispose()
