"""The run queue index also orders by id, so a claim locks each picked run by an exact index lookup.

Revision ID: 0002
Revises: 0001
"""

from extsched.db.migrate import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
