"""Bulk writes (COPY on PostgreSQL, executemany elsewhere) read back as ORM inserts would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import attach_customer, make_meter
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.store import _next_seq
from meter2cash.cis.ledger.journal import (
    COPY_FROM_ROWS,
    EntrySpec,
    ensure_chart,
    post_entries,
    post_scaled,
    trial_balance,
)
from meter2cash.cis.ledger.models import JournalEntry, JournalLine
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.core.errors import InvalidInput
from meter2cash.db_bulk import insert_columns, insert_rows, json_text
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel


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


def test_copy_text_escapes_and_json_read_back_exactly(db_url, session):
    """Tabs, newlines, backslashes and quotes in text and JSON, NULLs, unicode and floats come
    back as given, through COPY's text blocks on PostgreSQL and executemany on SQLite."""
    odd = 'a\tb\nc\\d\re\bf\vg\fh "q" – ü €'
    payloads = [
        {"s": odd, "f": [0.1, 1e-05, 1e16, -2.5, 123.456], "n": None, "u": "kWh – ü", "b": True, "i": 2**70},
        {"nested": {"list": [1, "\\", {"k": None}]}, "empty": {}},
        {"np": np.float64(1.25), "x": "plain"},
    ]
    rows = [
        {"message_id": f"e-{i}", "topic": "t.esc", "key": odd if i % 2 else "", "payload": payloads[i % 3]}
        for i in range(30)
    ]
    insert_rows(session, OutboxMessage.__table__, rows, copy_min_rows=0)
    session.commit()
    got = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "t.esc").order_by(OutboxMessage.id)
    )
    assert [(m.message_id, m.key, m.payload) for m in got] == [
        (r["message_id"], r["key"], r["payload"]) for r in rows
    ]


def test_json_text_parses_back_to_the_value():
    values = [
        {"a": 0.1, "b": [1e-05, 1e16, -0.0, 5e-324], "c": 'é–\n\\"', "d": None, "e": True},
        [1, 2**64, -(2**70)],  # beyond 64 bits: json.dumps
        {"np": np.float64(0.3), 1: "int key"},  # NumPy scalar, non-string key: json.dumps
        "text",
        3,
    ]
    for v in values:
        assert json.loads(json_text(v)) == json.loads(json.dumps(v))
    assert json_text(None) is None


def test_insert_columns_takes_scaled_money_and_same_values(db_url, session):
    """``scaled`` columns are stored as given (10⁻⁴ integers for Money), ``same`` values fill
    every row, omitted columns get their defaults; identical on COPY and executemany."""
    ensure_chart(session)
    ids = post_entries(
        session,
        [
            EntrySpec(
                "t",
                date(2026, 10, 31),
                "R",
                "m",
                [("1100", Decimal(1), None), ("4100", Decimal(-1), None)],
                "INR",
            )
        ],
    )
    table = JournalLine.__table__
    for copy_min_rows in (0, 10**6):
        insert_columns(
            session, table,
            {"ledger_account": ["1100", "4100", "2200"], "account_id": [None, None, None],
             "amount": [12345, -10000, -2345]},
            same={"entry_id": ids[0], "currency": "INR"}, copy_min_rows=copy_min_rows, scaled=("amount",),
        )  # fmt: skip
    session.commit()
    got = session.execute(
        select(JournalLine.ledger_account, JournalLine.amount, JournalLine.currency, JournalLine.account_id)
        .where(JournalLine.entry_id == ids[0])
        .order_by(JournalLine.id)
    ).all()
    expected = [("1100", Decimal("1.2345"), "INR", None), ("4100", Decimal("-1.0000"), "INR", None),
                ("2200", Decimal("-0.2345"), "INR", None)]  # fmt: skip
    assert [tuple(r) for r in got[2:]] == expected * 2


def test_post_scaled_stores_what_post_entries_does(db_url, session):
    ensure_chart(session)
    n = COPY_FROM_ROWS + 5  # PostgreSQL takes the COPY path
    legs = [
        [("1100", 10000 * i + 1234, None), ("4100", -10000 * i, None), ("2200", -1234, None)]
        for i in range(n)
    ]
    specs = [
        EntrySpec("bill", date(2026, 10, 31), f"R-{i}", f"memo {i}",
                  [(c, Decimal(a).scaleb(-4), acct) for c, a, acct in ls], "INR")
        for i, ls in enumerate(legs)
    ]  # fmt: skip
    a = post_entries(session, specs)
    b = post_scaled(
        session, "bill", date(2026, 10, 31), [f"R-{i}" for i in range(n)], [f"memo {i}" for i in range(n)],
        ["INR"] * n, legs,
    )  # fmt: skip
    session.commit()

    def stored(ids: list[int]) -> list[tuple]:
        entries = {e.id: e for e in session.scalars(select(JournalEntry).where(JournalEntry.id.in_(ids)))}
        out = []
        for i in ids:
            e = entries[i]
            lines = session.execute(
                select(
                    JournalLine.ledger_account,
                    JournalLine.amount,
                    JournalLine.account_id,
                    JournalLine.currency,
                )
                .where(JournalLine.entry_id == i)
                .order_by(JournalLine.id)
            ).all()
            out.append(
                (e.kind, e.effective_date, e.reference, e.memo, e.reverses_id, [tuple(r) for r in lines])
            )
        return out

    assert b == sorted(b) and stored(a) == stored(b)
    assert trial_balance(session).total == 0


@pytest.mark.parametrize(
    ("legs", "code"),
    [
        ([("1100", 100, None), ("4100", -99, None)], "ledger.unbalanced"),
        ([("1100", 100, None), ("9999", -100, None)], "ledger.unknown_account"),
        ([], "ledger.empty"),
    ],
)
def test_post_scaled_refuses_bad_entries(session, legs, code):
    ensure_chart(session)
    with pytest.raises(InvalidInput) as err:
        post_scaled(session, "bill", date(2026, 10, 31), ["R"], ["m"], ["INR"], [legs])
    assert err.value.code == code


def test_bill_numbers_continue_from_the_periods_last_number(db_url, session):
    ids = make_meter(session, "SEQ-1")
    meter_id = session.scalar(select(Channel.meter_id).where(Channel.id == ids["kwh_import_15m"]))
    attach_customer(session, meter_id, "SEQ-1", "residential")
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-SEQ-1"))
    at = datetime(2026, 10, 1, tzinfo=UTC)
    for number in ("B-2026-09-000007", "B-2026-10-000003", "B-2026-10-000012", "B-2026-11-000001"):
        session.add(
            Bill(number=number, service_agreement_id=sa.id, account_id=sa.account_id, period=number[2:9],
                 period_start=at, period_end=at, tariff_code="T", currency="INR")
        )  # fmt: skip
    session.flush()
    assert _next_seq(session, "2026-10") == 12
    assert _next_seq(session, "2026-09") == 7
    assert _next_seq(session, "2026-11") == 1
    assert _next_seq(session, "2026-12") == 0
    # past 999,999 a number grows a digit and sorts before the six-digit ones as text
    for number in ("B-2027-01-999999", "B-2027-01-1000000", "B-2027-01-1000001", "B-2027-01-999998"):
        session.add(
            Bill(number=number, service_agreement_id=sa.id, account_id=sa.account_id, period="2027-01",
                 period_start=at, period_end=at, tariff_code="T", currency="INR")
        )  # fmt: skip
    session.flush()
    assert _next_seq(session, "2027-01") == 1_000_001


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # COPY is PostgreSQL's
def test_copy_falls_back_to_psycopg_for_other_types(db_url, session):
    """A value the text blocks do not format (here a UUID for a text column) goes through
    psycopg's own adaptation, row by row, as before."""
    ids = [uuid.UUID(int=i) for i in range(5)]
    rows = [{"message_id": u, "topic": "t.uuid", "payload": {"i": i}} for i, u in enumerate(ids)]
    insert_rows(session, OutboxMessage.__table__, rows, copy_min_rows=0)
    session.commit()
    got = session.scalars(
        select(OutboxMessage.message_id).where(OutboxMessage.topic == "t.uuid").order_by(OutboxMessage.id)
    ).all()
    assert got == [u.hex for u in ids]  # psycopg writes a UUID as its 32 hex digits
