"""scheduled runs

``scheduled_run`` keeps every run of a periodic job, one per job and slot: the row claimed before
the job runs is what makes a slot run once across scheduler processes.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runner", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_run")),
        sa.UniqueConstraint("job", "slot", name=op.f("uq_scheduled_run_job_slot")),
    )
    with op.batch_alter_table("scheduled_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduled_run_job"), ["job"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduled_run_job"))

    op.drop_table("scheduled_run")
