"""Bill documents on SQLite and PostgreSQL: PDF and HTML with history, batch output, the print
file, and the API download."""

from __future__ import annotations

import csv
import warnings
from decimal import Decimal

from sqlalchemy import select
from test_billing import PERIOD, TZ, build_fleet

from meter2cash.api.app import create_app
from meter2cash.cis.billing.documents import render_bill_html
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.pdf import (
    bills_of_period,
    history_for,
    render_bill_pdf,
    write_bills_pdf,
    write_print_file,
)
from meter2cash.cis.billing.run import run_bills
from meter2cash.mdm.usage.local import LocalUsage

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _bill_for(session, tariff: str) -> Bill:
    return session.scalars(select(Bill).where(Bill.tariff_code == tariff, Bill.period == PERIOD)).one()


def test_pdf_and_html_show_amount_due_history_and_reference(session, tmp_path):
    build_fleet(session)
    # An earlier bill of the same agreement gives the history chart a bar.
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = _bill_for(session, "COM-TOU")
    history = [("2026-09", Decimal("812.500"))]
    raw = render_bill_pdf(bill, history=history, compress=False)
    assert raw.startswith(b"%PDF")
    text = raw.decode("latin-1")
    for needle in (
        bill.number,
        f"{bill.total:,.2f}",
        f"{bill.account.number}/{bill.number}",
        "26-09",
        "26-10",
    ):
        assert needle in text, needle
    assert "Amount due by" in text and "Consumption history" in text
    html = render_bill_html(bill, history=history)
    assert "812.5" in html and "ESTIMATED BILL" not in html
    assert history_for(session, bill) == []


def test_batch_pdf_and_print_file_for_a_cycle(session, tmp_path):
    build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    ids = bills_of_period(session, PERIOD)
    paths = write_bills_pdf(session, ids, tmp_path / "pdf")
    assert len(paths) == 4 and all(p.read_bytes().startswith(b"%PDF") for p in paths)
    assert write_print_file(session, ids, tmp_path / "print.csv") == 4
    rows = list(csv.DictReader((tmp_path / "print.csv").read_text(encoding="utf-8").splitlines()))
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["prepaid"]["status"] == "statement" and by_kind["prepaid"]["due_date"] == ""
    post = next(r for r in rows if r["tariff"] == "COM-TOU")
    bill = _bill_for(session, "COM-TOU")
    assert post["amount_due"] == f"{bill.total:.2f}" and post["payment_reference"].endswith(bill.number)


def test_api_pdf_download(platform):
    with platform.sessions() as s:
        build_fleet(s)
        run_bills(s, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
        s.commit()
        number = _bill_for(s, "RES-PP").number
    with TestClient(create_app(platform)) as c:
        r = c.get(f"/api/v1/bills/{number}.pdf")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF") and number in r.headers["content-disposition"]
        assert c.get("/api/v1/bills/NOPE.pdf").status_code == 404
