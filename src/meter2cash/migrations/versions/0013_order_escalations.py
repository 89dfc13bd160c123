"""order escalations

``service_order_escalation`` records each level an order past its state's SLA was raised to, once
per level and stay in a state.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_order_escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["service_order.id"],
            name=op.f("fk_service_order_escalation_order_id_service_order"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_order_escalation")),
        sa.UniqueConstraint(
            "order_id",
            "entered_at",
            "level",
            name=op.f("uq_service_order_escalation_order_id_entered_at_level"),
        ),
    )
    with op.batch_alter_table("service_order_escalation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_order_escalation_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_escalation_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("service_order_escalation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_order_escalation_order_id"))
        batch_op.drop_index(batch_op.f("ix_service_order_escalation_at"))

    op.drop_table("service_order_escalation")
