"""Token expiry and last use, server-side UI sessions, single-use SSO token ids.

Revision ID: 0003
Revises: 0002
"""

from extsched.db.migrate import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
