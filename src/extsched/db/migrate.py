"""Versioned, forward-only migrations (Alembic driving plain SQL files).

Each revision ``versions/NNNN_name.py`` runs the SQL file of the same stem, so the schema
reads as SQL and stays reviewable for Citus.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Map a libpq URL onto SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest revision (idempotent)."""
    command.upgrade(_config(url), "head")


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def newest_revision() -> str:
    """The head revision this code's migrations lead to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config("postgresql://unused")).get_current_head()
    assert head is not None
    return head


def run_sql_file(revision_file: str) -> None:
    """Execute the ``.sql`` file beside a revision module, as one multi-statement batch."""
    sql = Path(revision_file).with_suffix(".sql").read_text()
    from alembic import op

    op.get_bind().exec_driver_sql(sql)
