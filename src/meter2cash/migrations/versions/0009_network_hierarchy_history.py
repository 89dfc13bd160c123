"""network hierarchy history, boundary meters

``network_link`` keeps every dated link of the hierarchy (meter → DCU, service point →
transformer, transformer → feeder); ``boundary_meter`` names the meters measuring a
transformer's or a feeder's energy in. The current columns (``meter.dcu_id``,
``service_point.dt_id``, ``distribution_transformer.feeder_id``) stay as they are: a child
without links keeps its current parent as its only known one.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "network_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_link")),
    )
    with op.batch_alter_table("network_link", schema=None) as batch_op:
        batch_op.create_index("ix_network_link_child", ["kind", "child_id", "valid_from"], unique=False)
        batch_op.create_index("ix_network_link_parent", ["kind", "parent_id"], unique=False)

    op.create_table(
        "boundary_meter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("dt_id", sa.Integer(), nullable=True),
        sa.Column("feeder_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dt_id"],
            ["distribution_transformer.id"],
            name=op.f("fk_boundary_meter_dt_id_distribution_transformer"),
        ),
        sa.ForeignKeyConstraint(
            ["feeder_id"], ["feeder.id"], name=op.f("fk_boundary_meter_feeder_id_feeder")
        ),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"], name=op.f("fk_boundary_meter_meter_id_meter")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boundary_meter")),
    )
    with op.batch_alter_table("boundary_meter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_boundary_meter_dt_id"), ["dt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_boundary_meter_feeder_id"), ["feeder_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_boundary_meter_meter_id"), ["meter_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("boundary_meter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_boundary_meter_meter_id"))
        batch_op.drop_index(batch_op.f("ix_boundary_meter_feeder_id"))
        batch_op.drop_index(batch_op.f("ix_boundary_meter_dt_id"))

    op.drop_table("boundary_meter")
    with op.batch_alter_table("network_link", schema=None) as batch_op:
        batch_op.drop_index("ix_network_link_parent")
        batch_op.drop_index("ix_network_link_child")

    op.drop_table("network_link")
