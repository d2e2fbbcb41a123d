"""Per-install Standard Webhooks signing secrets (SPEC §5 "signing-secret", §6), encrypted at
rest like the install's secrets.

Revision ID: 0006
Revises: 0005
"""

from extsched.db.migrate import run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
