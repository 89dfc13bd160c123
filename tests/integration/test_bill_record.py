"""Bill documents on SQLite and PostgreSQL: a split (rebilled) bill shows what was billed in every
segment and its figures add up; an issued bill shows the customer as issued."""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import select
from test_billing import PERIOD, TZ
from test_billing_splits import OCT_END, OCT_START, agreement, meter, one_bill, put

from meter2cash.cis.billing.documents import render_bill_html
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.pdf import render_bill_pdf, write_print_file
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.billing.store import daily_series
from meter2cash.cis.contracts.changes import change_load, rebill_affected
from meter2cash.cis.parties.models import Person, Premise
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

D = Decimal
IST_DAY0 = date(2026, 10, 1)


def _cells(html: str, row_label: str) -> list[str]:
    """The cells of the table row whose first cell is ``row_label``."""
    m = re.search(rf"<tr[^>]*><td>{re.escape(row_label)}</td>(.*?)</tr>", html, re.S)
    assert m, row_label
    return re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


def _split_bill(session) -> tuple[Bill, int]:
    """A commercial TOU agreement rebilled after a load change on 11 October: two segments."""
    _, sp = agreement(session, "com-tou", "20")
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])[
        "kwh_import_15m"
    ]
    rng = np.random.default_rng(5)
    received = {}
    for d in range(33):
        day = date(2026, 9, 30) + timedelta(days=d)
        received[(ch, day)] = (np.arange(96), rng.integers(50, 400, 96) / 1000)
    MeasurementStore(session).merge(received, {ch: 900})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    change = change_load(session, "SA-S", date(2026, 10, 11), "30", reason="extension", by="test")
    result = rebill_affected(session, change, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    return session.get(Bill, result.new_bills[0]), ch


def test_a_split_bill_document_adds_up_over_its_segments(session):
    bill, ch = _split_bill(session)
    det = bill.determinants
    assert len(det["segments"]) == 2
    window = MeasurementStore(session).read_window([ch], OCT_START, OCT_END, 900)
    month = round(float(np.nansum(window.values)), 3)
    # the time-of-day table: every period summed over both segments, adding up to the total
    by_period = det["kwh_by_period"]
    assert abs(sum(by_period.values()) - month) < 0.002 and abs(float(bill.total_kwh) - month) < 0.002
    for name in by_period:
        both = sum(sg["kwh_by_period"][name] for sg in det["segments"])
        assert abs(by_period[name] - both) < 0.002
    # the daily chart: the readings of every local day, none shown as 0
    dates, kwh = daily_series(det["daily_kwh"])
    local = window.values[0].reshape(-1, 96)  # the local month starts at a UTC quarter-hour
    assert dates[0] == "2026-10-01" and dates[-1] == "2026-10-31" and len(kwh) == 31
    assert np.allclose(kwh, local.sum(axis=1), atol=0.0006)
    assert min(kwh) > 0
    html = render_bill_html(bill)
    cells = _cells(html, "Total")  # the first "Total" row is the segments table
    assert cells[-2] == f"{bill.total_kwh}"
    assert "Parts of the period" in html and "01 Oct – 10 Oct" in html and "11 Oct – 31 Oct" in html
    seg_amounts = re.findall(
        r"<tr><td>\d\d Oct – \d\d Oct</td>(?:<td[^>]*>.*?</td>){3}<td class=\"num\">([\d,.]+)</td>", html
    )
    assert sum(D(a.replace(",", "")) for a in seg_amounts) == bill.total
    tod = _cells(html, "peak")
    assert tod[0] == f"{D(str(by_period['peak'])).normalize():f}" or D(tod[0]) == D(str(by_period["peak"]))


def test_an_issued_bill_shows_the_customer_as_issued(session, tmp_path):
    _, sp = agreement(session, "res-lt1", "2")
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])
    put(session, ch["kwh_import_15m"], 0.1, OCT_START, OCT_END)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = one_bill(session)
    assert bill.issued_to["name"] == "Site" and bill.issued_to["address"] == "4 Canal Rd"
    # master data changes after the bill was issued
    session.scalars(select(Person)).one().name = "New Owner"
    session.scalars(select(Premise)).one().address = "9 Harbour St"
    session.commit()
    html = render_bill_html(bill)
    assert "Site" in html and "4 Canal Rd" in html
    assert "New Owner" not in html and "9 Harbour St" not in html
    pdf = render_bill_pdf(bill, compress=False)
    assert b"Site" in pdf and b"New Owner" not in pdf
    path = tmp_path / "print.csv"
    write_print_file(session, [bill.id], path)
    with path.open(newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert (row["name"], row["address"]) == ("Site", "4 Canal Rd")
    assert row["total"] == f"{bill.total:.2f}"  # INR: two places, not the stored four


def test_daily_consumption_reads_both_stored_forms():
    """Bills store the first day and the kWh of each day; bills issued before listed each date."""
    assert daily_series({"first": "2026-10-30", "kwh": [1.5, 2.0, 0.25]}) == (
        ["2026-10-30", "2026-10-31", "2026-11-01"],
        [1.5, 2.0, 0.25],
    )
    assert daily_series({"dates": ["2026-10-30", "2026-10-31"], "kwh": [1.5, 2.0]}) == (
        ["2026-10-30", "2026-10-31"],
        [1.5, 2.0],
    )
    assert daily_series(None) == ([], []) and daily_series({"kwh": []}) == ([], [])
