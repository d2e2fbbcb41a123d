"""Notifications (SPEC §5, §9): a tenant's webhook settings and the delivery outbox.

Revision ID: 0008
Revises: 0007
"""

from extsched.db.migrate import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
