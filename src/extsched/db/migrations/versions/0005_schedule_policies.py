"""Schedule policies (SPEC §5): overlap, attempts, timeout, jitter, windows, pause, DST
choices, origin; replays and one-off payloads of runs.

Revision ID: 0005
Revises: 0004
"""

from extsched.db.migrate import run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only")
