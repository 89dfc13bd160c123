"""payment mode and tariff as dated contract terms; the customer as issued on every bill

``contract_term`` gains ``payment_mode`` and ``tariff_code``: a change of payment mode or tariff
is a dated term of the agreement, like a change of sanctioned load. Existing terms take the
agreement's current mode and tariff. ``bill.issued_to`` keeps the customer, premise and
agreement as they were when the bill was issued.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("tariff_code", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE contract_term SET payment_mode = (SELECT payment_mode FROM service_agreement"
        " WHERE service_agreement.id = contract_term.service_agreement_id),"
        " tariff_code = (SELECT tariff_code FROM service_agreement"
        " WHERE service_agreement.id = contract_term.service_agreement_id)"
    )
    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.alter_column("payment_mode", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("tariff_code", existing_type=sa.String(length=64), nullable=False)

    with op.batch_alter_table("bill", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issued_to", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bill", schema=None) as batch_op:
        batch_op.drop_column("issued_to")

    with op.batch_alter_table("contract_term", schema=None) as batch_op:
        batch_op.drop_column("tariff_code")
        batch_op.drop_column("payment_mode")
