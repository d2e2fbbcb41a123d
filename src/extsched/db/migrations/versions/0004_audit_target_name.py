"""Audit targets carry the object's name, so a UI can name and link them.

Revision ID: 0004
Revises: 0003
"""

from extsched.db.migrate import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
