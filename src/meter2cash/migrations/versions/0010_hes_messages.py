"""messages received from head-end systems

``hes_message`` remembers every message a head-end sent (by sender and message id) with the reply
it got: a message received again is answered with the same reply and changes nothing.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hes_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hes_message")),
        sa.UniqueConstraint("sender", "message_id", name="uq_hes_message_sender_message_id"),
    )
    with op.batch_alter_table("hes_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hes_message_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hes_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hes_message_received_at"))
    op.drop_table("hes_message")
