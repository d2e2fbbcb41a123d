"""Create takes the tenant lock and counts the quotas in one round trip (two statements).

Revision ID: 0011
Revises: 0010
"""

from extsched.db.migrate import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
