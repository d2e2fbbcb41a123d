"""The fair claim counts runs in flight by a plain index scan; schedules leave room for HOT updates.

Revision ID: 0010
Revises: 0009
"""

from extsched.db.migrate import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
