"""Bulk writes (COPY on PostgreSQL, executemany elsewhere) read back as ORM inserts would."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from meter2cash.cis.bulk import insert_rows
from meter2cash.cis.ledger import COPY_FROM_ROWS, EntrySpec, ensure_chart, post_entries, trial_balance
from meter2cash.cis.models import JournalEntry, JournalLine
from meter2cash.integration.models import OutboxMessage


def test_copied_rows_get_their_defaults_and_exact_values(db_url, session):
    rows = [
        {"message_id": f"m-{i}", "topic": "t.copy", "payload": {"i": i, "x": [1, "a"]}} for i in range(150)
    ]
    insert_rows(session, OutboxMessage.__table__, rows, copy_min_rows=0)
    session.commit()
    got = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [m.message_id for m in got] == [r["message_id"] for r in rows]
    assert got[7].payload == {"i": 7, "x": [1, "a"]}
    assert all(m.key == "" and m.attempts == 0 and m.created_at.tzinfo is not None for m in got)
    assert all(m.dispatched_at is None for m in got)


def test_many_entries_are_posted_in_order_and_balance(db_url, session):
    ensure_chart(session)
    n = COPY_FROM_ROWS + 20  # PostgreSQL takes the COPY path
    specs = [
        EntrySpec(
            "bill", date(2026, 10, 31), f"B-{i}", f"memo {i}",
            [("1100", Decimal(f"{i}.1234"), None), ("4100", Decimal(f"-{i}.1234"), None)], "INR",
        )
        for i in range(n)
    ]  # fmt: skip
    ids = post_entries(session, specs)
    session.commit()
    assert len(ids) == n and ids == sorted(ids)
    refs = dict(session.execute(select(JournalEntry.id, JournalEntry.reference)).all())
    assert [refs[i] for i in ids] == [f"B-{i}" for i in range(n)]
    amount = session.scalar(
        select(JournalLine.amount).where(JournalLine.entry_id == ids[5], JournalLine.ledger_account == "1100")
    )
    assert amount == Decimal("5.1234")
    assert session.scalar(select(func.count()).select_from(JournalLine)) == 2 * n
    assert trial_balance(session).total == 0
