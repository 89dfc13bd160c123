"""indexes on bill.journal_entry_id, bill.period and journal_entry.reverses_id

A reversal looks up whether an entry was already reversed (``reverses_id``), open items and the
revenue report join journal entries to their bills (``bill.journal_entry_id``), and deleting a
journal entry checks both foreign keys; a bill run looks up the bills already issued for its
period (``bill.period``): without the indexes each is a scan of the table.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bill", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bill_journal_entry_id"), ["journal_entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bill_period"), ["period"], unique=False)

    with op.batch_alter_table("journal_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journal_entry_reverses_id"), ["reverses_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("journal_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_entry_reverses_id"))

    with op.batch_alter_table("bill", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bill_period"))
        batch_op.drop_index(batch_op.f("ix_bill_journal_entry_id"))
