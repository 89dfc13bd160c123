"""contract terms, learned VEE models, re-read outcomes

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vee_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("history_from", sa.Date(), nullable=True),
        sa.Column("history_to", sa.Date(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("params", sa.LargeBinary(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vee_model")),
        sa.UniqueConstraint(
            "scope", "interval_s", "version", name=op.f("uq_vee_model_scope_interval_s_version")
        ),
    )
    with op.batch_alter_table("vee_model", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vee_model_scope"), ["scope"], unique=False)

    op.create_table(
        "contract_term",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_agreement_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("sanctioned_load_kw", sa.BigInteger(), nullable=False),
        sa.Column("contract_demand_kva", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_agreement_id"],
            ["service_agreement.id"],
            name=op.f("fk_contract_term_service_agreement_id_service_agreement"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_term")),
        sa.UniqueConstraint(
            "service_agreement_id",
            "effective_from",
            name=op.f("uq_contract_term_service_agreement_id_effective_from"),
        ),
    )
    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_term_service_agreement_id"), ["service_agreement_id"], unique=False
        )

    with op.batch_alter_table("vee_reread_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("vee_reread_request", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("completed_at")
        batch_op.drop_column("sent_at")

    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_term_service_agreement_id"))

    op.drop_table("contract_term")
    with op.batch_alter_table("vee_model", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vee_model_scope"))

    op.drop_table("vee_model")
