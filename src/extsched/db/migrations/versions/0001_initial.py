"""Initial schema: registry, tokens, tenants, installs, schedules, runs, audit, job handles.

Revision ID: 0001
Revises:
"""

from extsched.db.migrate import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
