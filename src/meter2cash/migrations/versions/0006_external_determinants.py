"""determinants delivered by an external MDM

``external_determinants`` keeps every record an external MDM delivered (docs/formats.md
#determinants): a service point's determinants over local days in one data version of the
sender, the latest delivered for a service point and days marked current.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "external_determinants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_point_code", sa.String(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_determinants")),
        sa.UniqueConstraint(
            "service_point_code",
            "first_day",
            "last_day",
            "source",
            "version",
            name="uq_external_determinants_version",
        ),
    )
    with op.batch_alter_table("external_determinants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_external_determinants_current", ["service_point_code", "current"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("external_determinants", schema=None) as batch_op:
        batch_op.drop_index("ix_external_determinants_current")

    op.drop_table("external_determinants")
