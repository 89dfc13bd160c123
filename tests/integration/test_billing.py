"""The bill run end to end on SQLite and PostgreSQL: a small fleet, October 2026 in Asia/Kolkata."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from meter2cash.cis.billing import run as billing
from meter2cash.cis.billing.documents import render_bill_html, write_bills_html
from meter2cash.cis.billing.models import Bill, BillLine
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.ledger.models import JournalEntry, JournalLine
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.tariffs.loader import parse_tariff, store_tariff
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
TZ = "Asia/Kolkata"
PERIOD = "2026-10"

#: number, tariff, mode, class, sanctioned kW, start date, has meter, has data
FLEET = [
    ("SA-1", "RES-LT1", "postpaid", "residential", "2", date(2025, 1, 1), True, True),
    ("SA-2", "RES-LT1", "postpaid", "residential", "3.5", date(2026, 10, 15), True, True),
    ("SA-3", "COM-TOU", "postpaid", "commercial", "20", date(2025, 1, 1), True, True),
    ("SA-4", "RES-PP", "prepaid", "residential", "1", date(2025, 1, 1), True, True),
    ("SA-5", "RES-LT1", "postpaid", "residential", "2", date(2025, 1, 1), False, False),
    ("SA-6", "RES-LT1", "postpaid", "residential", "2", date(2025, 1, 1), True, False),
]


def build_fleet(session, seed: int = 7, tariffs: dict[str, str] | None = None) -> dict[str, int]:
    """Master data, tariffs and 15-minute data for October 2026; returns agreement number → channel id.

    ``tariffs`` replaces example files by TOML text (file stem → text)."""
    for f in ("res-lt1", "com-tou", "res-pp"):
        path = EXAMPLES / f"{f}.toml"
        text = (tariffs or {}).get(f) or path.read_text()
        store_tariff(session, parse_tariff(text), text)
    rts = ensure_catalogue(session)
    rng = np.random.default_rng(seed)
    channels: dict[str, int] = {}
    received = {}
    for i, (number, tariff, mode, cls, kw, start, has_meter, has_data) in enumerate(FLEET):
        person = Person(name=f"Customer {i}")
        premise = Premise(code=f"P-{i}", address=f"{i} MG Road", city="Pune", postcode="411001")
        session.add_all([person, premise])
        session.flush()
        account = Account(number=f"A-{i}", person_id=person.id, customer_class=cls)
        sp = ServicePoint(code=f"SP-{i}", premise_id=premise.id)
        session.add_all([account, sp])
        session.flush()
        session.add(
            ServiceAgreement(
                number=number,
                account_id=account.id,
                service_point_id=sp.id,
                tariff_code=tariff,
                payment_mode=mode,
                sanctioned_load_kw=Decimal(kw),
                start_date=start,
            )
        )
        if not has_meter:
            continue
        meter = Meter(serial=f"M-{i}", status="installed")
        session.add(meter)
        session.flush()
        ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
        session.add(ch)
        session.flush()
        session.add(
            Installation(
                meter_id=meter.id, service_point_id=sp.id, installed_at=datetime(2025, 1, 1, tzinfo=UTC)
            )
        )
        channels[number] = ch.id
        if has_data:
            scale = 2000 if tariff == "COM-TOU" else 400
            for d in range(33):  # UTC days 2026-09-30 .. 2026-11-01 cover the local month
                day = date(2026, 9, 30) + timedelta(days=d)
                received[(ch.id, day)] = (np.arange(96), rng.integers(0, scale, 96) / 1000)
    session.flush()
    MeasurementStore(session).merge(received, {cid: 900 for cid, _ in received})
    session.commit()
    return channels


def _window_kwh(session, channel_id: int, from_day: date | None = None) -> np.ndarray:
    """Stored kWh of the local billing month, from ``from_day`` (local) on when given."""
    start, end = local_month_bounds(PERIOD, TZ)
    if from_day is not None:
        start = max(
            start, datetime(from_day.year, from_day.month, from_day.day, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
        )
    return MeasurementStore(session).read_window([channel_id], start, end, 900).values[0]


def test_bill_run_bills_posts_and_balances(session):
    channels = build_fleet(session)
    result = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()

    assert len(result.bills) == 4
    assert sorted(e["code"] for e in result.errors) == ["billing.no_data", "billing.no_meter"]
    assert {e["service_agreement"] for e in result.errors} == {"SA-5", "SA-6"}
    bills = {b.service_agreement.number: b for b in session.scalars(select(Bill))}
    assert sorted(b.number for b in bills.values()) == [f"B-2026-10-{i:06d}" for i in range(1, 5)]

    starts = {f[0]: f[5] for f in FLEET}
    for number, bill in bills.items():
        # Energy before an agreement's start date belongs to no bill of it.
        stored = _window_kwh(session, channels[number], starts[number])
        assert bill.total_kwh == Decimal(str(round(float(np.nansum(stored)), 3)))
        assert bill.total == sum(ln.amount for ln in bill.lines)
        if bill.kind == "prepaid":
            continue
        assert bill.journal_entry_id is not None and bill.status == "issued" and not bill.estimated
        legs = session.scalars(select(JournalLine).where(JournalLine.entry_id == bill.journal_entry_id)).all()
        assert sum(leg.amount for leg in legs) == 0
        debit = [leg for leg in legs if leg.account_id == bill.account_id]
        assert [(d.ledger_account, d.amount) for d in debit] == [("1100", bill.total)]
    # Prepaid agreements are charged daily by the prepaid engine: the run makes a statement only.
    statement = bills["SA-4"]
    assert statement.kind == "prepaid" and statement.status == "statement" and statement.due_date is None
    assert statement.journal_entry_id is None and statement.total > 0
    assert any(ln.component == "prepaid_discount" for ln in statement.lines)
    assert result.statements == 1
    assert "(17/31 days)" in bills["SA-2"].lines[0].description
    assert bills["SA-1"].lines[0].description == "Fixed charge"

    tb = trial_balance(session)
    assert tb.total == 0 and tb.total_debit == tb.total_credit
    by_code = {r.code: r for r in tb.rows}
    postpaid = sum(b.total for b in bills.values() if b.kind == "postpaid")
    assert by_code["1100"].balance == postpaid
    assert "2100" not in by_code or by_code["2100"].balance == 0
    assert account_balance(session, bills["SA-4"].account_id, "2100") == 0
    assert result.total_amount == postpaid
    assert account_balance(session, bills["SA-1"].account_id) == bills["SA-1"].total
    assert session.scalar(select(func.count()).where(OutboxMessage.topic == "bill.issued")) == 4
    totals = result.to_dict()["totals"]
    assert {(t["customer_class"], t["kind"]): t["count"] for t in totals} == {
        ("commercial", "postpaid"): 1,
        ("residential", "postpaid"): 2,
        ("residential", "prepaid"): 1,
    }


def test_tou_determinants_follow_local_time_and_holidays(session):
    channels = build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = session.scalars(select(Bill).where(Bill.tariff_code == "COM-TOU")).one()
    start, end = local_month_bounds(PERIOD, TZ)
    values = _window_kwh(session, channels["SA-3"])
    local = pd.date_range(start, end, freq="15min", inclusive="left").tz_convert(TZ)
    holidays = [date(2026, 10, 2), date(2026, 10, 20)]  # Gandhi Jayanti (Fri), Dussehra (Tue)
    weekday = (local.day_of_week < 5) & ~np.isin(local.date, holidays)
    peak = weekday & (local.hour >= 18) & (local.hour < 22)
    night = (local.hour >= 22) | (local.hour < 6)
    det = bill.determinants
    assert det["kwh_by_period"]["peak"] == round(float(values[peak].sum()), 3)
    assert det["kwh_by_period"]["night"] == round(float(values[night].sum()), 3)
    assert det["max_demand_kw"] == round(float(values.max() * 4), 3)
    assert len(det["daily_kwh"]["kwh"]) == 31 and det["daily_kwh"]["first"] == "2026-10-01"
    peak_line = next(ln for ln in bill.lines if ln.description == "ToD peak surcharge")
    assert peak_line.quantity == Decimal(str(det["kwh_by_period"]["peak"]))


def test_rerun_changes_nothing(session):
    build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    counts = [session.scalar(select(func.count()).select_from(t)) for t in (Bill, BillLine, JournalLine)]
    again = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert again.bills == [] and again.skipped == 4
    assert [
        session.scalar(select(func.count()).select_from(t)) for t in (Bill, BillLine, JournalLine)
    ] == counts
    assert trial_balance(session).total == 0


def _stored(session) -> list[tuple]:
    """Every bill of the run with its lines and journal legs, without ids and times."""
    out = []
    for b in session.scalars(select(Bill).order_by(Bill.number)):
        legs = session.execute(
            select(JournalLine.ledger_account, JournalLine.amount, JournalLine.account_id)
            .where(JournalLine.entry_id == b.journal_entry_id)
            .order_by(JournalLine.id)
        ).all()
        lines = [(ln.seq, ln.component, ln.description, ln.quantity, ln.rate, ln.amount) for ln in b.lines]
        out.append((b.number, b.service_agreement_id, b.total, b.total_kwh, b.determinants, lines, legs))
    return out


def test_a_run_in_many_chunks_stores_what_one_chunk_does(session, monkeypatch):
    """One agreement per chunk: reads ahead and stores behind the chunk being rated (on
    PostgreSQL on a database thread) give the same bills, in the same order, as one chunk."""
    build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    whole = _stored(session)
    for model in (BillLine, Bill, JournalLine, JournalEntry, OutboxMessage):
        session.execute(delete(model))
    session.commit()
    monkeypatch.setattr(billing, "CHUNK_AGREEMENTS", 1)
    result = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert len(result.bills) == 4 and _stored(session) == whole
    assert trial_balance(session).total == 0


def test_a_failed_store_stops_the_run_and_nothing_after_it_runs(session, monkeypatch):
    build_fleet(session)
    monkeypatch.setattr(billing, "CHUNK_AGREEMENTS", 1)
    calls = []
    real = billing.store_bills

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(billing, "store_bills", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.rollback()
    assert len(calls) == 2  # the chunks queued behind the failed one were not stored
    assert session.scalar(select(func.count()).select_from(Bill)) == 0


def test_the_run_issues_its_bills_at_the_time_its_clock_gives(session):
    from meter2cash.cis.billing.models import BillRun

    build_fleet(session)
    issued = datetime(2026, 11, 3, 4, 30, tzinfo=UTC)  # 10:00 in Kolkata
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage, clock=lambda: issued)
    session.commit()
    bills = session.scalars(select(Bill).where(Bill.kind == "postpaid")).all()
    assert bills and {b.issued_at for b in bills} == {issued}
    assert {b.due_date for b in bills} == {date(2026, 11, 18)}  # 3 November + 15 days
    run = session.scalars(select(BillRun)).one()
    assert run.started_at == issued and run.finished_at == issued


def test_bill_html_document(session, tmp_path):
    build_fleet(session)
    result = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = session.scalars(select(Bill).where(Bill.tariff_code == "COM-TOU")).one()
    html = render_bill_html(bill, history=[("2026-09", Decimal("812.500"))])
    assert bill.number in html and "1 MG Road" not in html and "2 MG Road" in html
    assert "<svg" in html and "ToD peak surcharge" in html and f"{bill.total:,.2f}" in html
    paths = write_bills_html(session, result.bills, tmp_path)
    assert len(paths) == 4 and all(p.read_text().startswith("<!DOCTYPE html>") for p in paths)
