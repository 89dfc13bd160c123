"""per-reading idempotent ingest, plausibility limits of readings, VEE chunk failures

``raw_batch`` gains ``accepted`` (one bit per parsed reading of the file: accepted or not),
``receipts`` and ``last_received_at``: the same bytes received again store only the readings not
accepted before. ``reading_limits_version`` keeps every version of the plausibility limits.
``vee_run.failures`` records the chunks of channels a run could not validate.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("raw_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("receipts", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("vee_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.JSON(), nullable=True))

    op.create_table(
        "reading_limits_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_limits_version")),
        sa.UniqueConstraint("version", name=op.f("uq_reading_limits_version_version")),
    )


def downgrade() -> None:
    op.drop_table("reading_limits_version")

    with op.batch_alter_table("vee_run", schema=None) as batch_op:
        batch_op.drop_column("failures")

    with op.batch_alter_table("raw_batch", schema=None) as batch_op:
        batch_op.drop_column("last_received_at")
        batch_op.drop_column("receipts")
        batch_op.drop_column("accepted")
