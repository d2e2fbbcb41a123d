"""Due handles by tenant, so a tick during a herd interleaves tenants (handles_claim_due_fair).

Revision ID: 0009
Revises: 0008
"""

from extsched.db.migrate import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
