"""service orders

``service_order`` holds every order with its number, type, workflow version, state, team and
deadlines; ``service_order_step`` every action taken on it (who, role, why); ``service_order_trigger``
what each action set off; ``workflow_definition`` each version of a workflow that orders run.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_definition")),
        sa.UniqueConstraint("type", "version", name=op.f("uq_workflow_definition_type_version")),
    )
    op.create_table(
        "service_order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("workflow_version", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("team", sa.String(length=40), nullable=False),
        sa.Column("area", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("service_agreement_id", sa.Integer(), nullable=True),
        sa.Column("service_point_id", sa.Integer(), nullable=True),
        sa.Column("meter_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_service_order_account_id_account")
        ),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_service_order_meter_id_meter")),
        sa.ForeignKeyConstraint(
            ["service_agreement_id"],
            ["service_agreement.id"],
            name=op.f("fk_service_order_service_agreement_id_service_agreement"),
        ),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_point.id"],
            name=op.f("fk_service_order_service_point_id_service_point"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_order")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_service_order_idempotency_key")),
        sa.UniqueConstraint("number", name=op.f("uq_service_order_number")),
    )
    with op.batch_alter_table("service_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_order_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_service_order_service_agreement_id"), ["service_agreement_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_service_order_service_point_id"), ["service_point_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_service_order_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_state_due_at"), ["state_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_team"), ["team"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_type"), ["type"], unique=False)

    op.create_table(
        "service_order_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=40), nullable=True),
        sa.Column("to_state", sa.String(length=40), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["service_order.id"], name=op.f("fk_service_order_step_order_id_service_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_order_step")),
    )
    with op.batch_alter_table("service_order_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_order_step_order_id"), ["order_id"], unique=False)

    op.create_table(
        "service_order_trigger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["service_order.id"], name=op.f("fk_service_order_trigger_order_id_service_order")
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["service_order_step.id"],
            name=op.f("fk_service_order_trigger_step_id_service_order_step"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_order_trigger")),
    )
    with op.batch_alter_table("service_order_trigger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_order_trigger_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_order_trigger_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("service_order_trigger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_order_trigger_status"))
        batch_op.drop_index(batch_op.f("ix_service_order_trigger_order_id"))

    op.drop_table("service_order_trigger")
    with op.batch_alter_table("service_order_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_order_step_order_id"))

    op.drop_table("service_order_step")
    with op.batch_alter_table("service_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_order_type"))
        batch_op.drop_index(batch_op.f("ix_service_order_team"))
        batch_op.drop_index(batch_op.f("ix_service_order_state_due_at"))
        batch_op.drop_index(batch_op.f("ix_service_order_state"))
        batch_op.drop_index(batch_op.f("ix_service_order_service_point_id"))
        batch_op.drop_index(batch_op.f("ix_service_order_service_agreement_id"))
        batch_op.drop_index(batch_op.f("ix_service_order_meter_id"))
        batch_op.drop_index(batch_op.f("ix_service_order_account_id"))

    op.drop_table("service_order")
    op.drop_table("workflow_definition")
