"""Run history at scale (SPEC §5): indexes that serve each filter of the run listings
(status, trigger, time window, extension) newest first.

Revision ID: 0007
Revises: 0006
"""

from extsched.db.migrate import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
