"""Bill documents as PDF (fpdf2, pure Python), batch output for a cycle, and the bill print file.

The PDF follows the HTML bill's layout: utility header, customer and supply address, period,
tariff, determinants by TOU period, charges and taxes, adjustments, a consumption history chart
(the earlier bills' kWh and this one), amount due, due date and payment reference. Functions
taking a Session only read.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from meter2cash.cis.billing.documents import (
    format_rate,
    history_for,
    issued_to,
    money,
    replacement_of,
    segment_rows,
    supply_notes,
)
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.core.money import minor_exponent

_ASCII = str.maketrans({"–": "-", "—": "-", "×": "x", "…": "...", "₹": "Rs", "€": "EUR", "’": "'", "·": "-"})


def _t(text: Any) -> str:
    """Text for the PDF core fonts (Latin-1)."""
    return str(text).translate(_ASCII).encode("latin-1", "replace").decode("latin-1")


def amount_due(bill: Bill) -> Decimal:
    return bill.total + (bill.adjustment or Decimal(0))


def render_bill_pdf(
    bill: Bill,
    *,
    history: list[tuple[str, Decimal]] | None = None,
    utility_name: str = "meter2cash demo utility",
    compress: bool = True,
) -> bytes:
    """One bill as a PDF document (A4), as issued. ``bill`` must be attached to a session."""
    det = bill.determinants or {}
    party = issued_to(bill)
    places = minor_exponent(bill.currency)
    pdf = FPDF(format="A4")
    pdf.set_compression(compress)
    pdf.set_compression(compress)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_title(_t(f"Bill {bill.number}"))
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _t(utility_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    kind = "Prepaid statement" if bill.kind == "prepaid" else "Electricity bill"
    pdf.cell(0, 6, _t(f"{kind} {bill.number} - period {bill.period} - issued {bill.issued_at:%Y-%m-%d}"),
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    if bill.estimated:
        pdf.set_text_color(180, 83, 9)
        pdf.cell(0, 6, "ESTIMATED BILL: readings were incomplete", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    if bill.status == "cancelled":
        pdf.set_text_color(180, 0, 0)
        by = replacement_of(bill)
        note = f"CANCELLED: {bill.cancel_reason}" + (f" - replaced by bill {by}" if by else "")
        pdf.cell(0, 6, _t(note), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    left = [party["name"], party["address"], f"{party['city']} {party['postcode']}".strip()]
    right = [
        f"Account {party['account']}",
        f"Agreement {party['agreement']} ({bill.kind})",
        f"Tariff {bill.tariff_code}",
        f"Service point {party['service_point']}",
    ]
    for a, b in zip(left + [""] * (len(right) - len(left)), right, strict=False):
        pdf.cell(95, 5, _t(a))
        pdf.cell(0, 5, _t(b), new_x="LMARGIN", new_y="NEXT")
    for note in supply_notes(det):
        pdf.cell(95, 5, "")
        pdf.multi_cell(0, 5, _t(note), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _amount_box(pdf, bill)
    segments = segment_rows(bill)
    if segments:
        _heading(pdf, "Parts of the period")
        widths = (50, 40, 30, 36, 30)
        _row(pdf, ["Days", "Tariff", "Load", "kWh", "Amount"], bold=True, widths=widths)
        for sg in segments:
            _row(pdf, [sg["dates"], sg["tariff"], sg["load"], sg["kwh"], sg["amount"]], widths=widths)
    periods = det.get("kwh_by_period") or {}
    if len(periods) > 1:
        _heading(pdf, "Consumption by time of day")
        md = det.get("max_demand_kw_by_period") or {}
        _row(pdf, ["Period", "kWh", "Max demand kW"], bold=True)
        for name, kwh in periods.items():
            _row(pdf, [name, f"{kwh:,.3f}", f"{md.get(name, 0):,.3f}"])
    _heading(pdf, f"Charges ({bill.currency})")
    _row(pdf, ["Description", "Quantity", "Unit", "Rate", "Amount"], bold=True, widths=(86, 26, 16, 26, 32))
    for ln in bill.lines:
        if ln.component == "adjustment":
            continue
        qty = "" if ln.quantity is None else f"{ln.quantity.normalize():f}"
        rate = "" if ln.rate is None else format_rate(ln.rate)
        _row(pdf, [ln.description, qty, ln.unit, rate, money(ln.amount, places)], widths=(86, 26, 16, 26, 32))
    for label, value in (("Subtotal", bill.subtotal), ("Taxes and duties", bill.tax), ("Total", bill.total)):
        _row(pdf, [label, "", "", "", money(value, places)], bold=True, widths=(86, 26, 16, 26, 32))
    for ln in bill.lines:
        if ln.component == "adjustment":
            _row(pdf, [ln.description, "", "", "", money(ln.amount, places)], widths=(86, 26, 16, 26, 32))
    terms = det.get("terms") or {}
    if terms:
        pdf.set_font("Helvetica", "", 8)
        text: list[str] = []
        if terms.get("prompt_payment_rebate"):
            rebate = f"{bill.currency} {terms['prompt_payment_rebate']}"
            by_day = f" (by {terms['prompt_payment_by']})" if terms.get("prompt_payment_by") else ""
            text.append(
                f"Pay within {terms['prompt_payment_days']} days{by_day} and deduct a rebate of {rebate}."
            )
        if terms.get("late_payment_surcharge_percent"):
            start = terms.get("late_payment_from")
            pct = terms["late_payment_surcharge_percent"]
            when = f" from {start}." if start else " after the due date."
            text.append(f"Late-payment surcharge {pct} % a month of the amount unpaid{when}")
        if terms.get("banked_kwh"):
            text.append(f"Banked export carried forward: {terms['banked_kwh']} kWh.")
        pdf.multi_cell(0, 4, _t(" ".join(text)), new_x="LMARGIN", new_y="NEXT")
    _history_chart(pdf, [*(history or []), (bill.period, bill.total_kwh)])
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, _t(f"Payment reference {party['account']}/{bill.number}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _amount_box(pdf: FPDF, bill: Bill) -> None:
    pdf.set_fill_color(11, 83, 148)
    pdf.set_text_color(255, 255, 255)
    pdf.set_font("Helvetica", "B", 12)
    if bill.kind == "prepaid":
        label = "Charged daily to your prepaid balance"
    else:
        label = f"Amount due by {bill.due_date.isoformat() if bill.due_date else ''}"
    pdf.cell(120, 12, _t(f"  {label}"), fill=True)
    places = minor_exponent(bill.currency)
    pdf.cell(0, 12, _t(f"{bill.currency} {money(amount_due(bill), places)}  "), fill=True, align="R",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.set_text_color(0, 0, 0)
    pdf.ln(3)


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, _t(text), new_x="LMARGIN", new_y="NEXT")


def _row(pdf: FPDF, cells: list[str], *, bold: bool = False, widths: Sequence[int] = (70, 50, 50)) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", 8)
    for i, (text, w) in enumerate(zip(cells, widths, strict=False)):
        pdf.cell(
            w, 5, _t(text)[:60], border="B", align="L" if i == 0 or (i == 2 and len(widths) > 3) else "R"
        )
    pdf.ln(5)


def _history_chart(pdf: FPDF, history: list[tuple[str, Decimal]]) -> None:
    """Bars of kWh per period, the current period highlighted."""
    _heading(pdf, "Consumption history (kWh)")
    top = max((float(k) for _, k in history), default=0.0) or 1.0
    x0, y0, h = pdf.get_x(), pdf.get_y(), 35.0
    if y0 + h + 12 > pdf.h - 15:
        pdf.add_page()
        x0, y0 = pdf.get_x(), pdf.get_y()
    bar = min(14.0, 180.0 / max(len(history), 1))
    pdf.set_font("Helvetica", "", 6)
    for i, (period, kwh) in enumerate(history):
        height = float(kwh) / top * h
        last = i == len(history) - 1
        pdf.set_fill_color(*((11, 83, 148) if last else (150, 170, 190)))
        x = x0 + i * bar
        pdf.rect(x + 1, y0 + h - height, bar - 2, height, style="F")
        pdf.text(x + 1, y0 + h + 3, _t(period[2:]))
        pdf.text(x + 1, y0 + h - height - 1, f"{float(kwh):.0f}")
    pdf.set_y(y0 + h + 6)


def _load(session: Session, ids: list[int]) -> list[Bill]:
    return list(
        session.scalars(
            select(Bill)
            .where(Bill.id.in_(ids))
            .options(
                selectinload(Bill.lines),
                selectinload(Bill.account).selectinload(Account.person),
                selectinload(Bill.service_agreement).selectinload(ServiceAgreement.service_point),
            )
            .order_by(Bill.number)
        )
    )


def write_bills_pdf(session: Session, bill_ids: Sequence[int], out_dir: str | Path) -> list[Path]:
    """Render bills to ``out_dir/<number>.pdf`` (batch output for a cycle)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    ids = list(bill_ids)
    for i in range(0, len(ids), 500):
        for bill in _load(session, ids[i : i + 500]):
            path = out / f"{bill.number}.pdf"
            path.write_bytes(render_bill_pdf(bill, history=history_for(session, bill)))
            paths.append(path)
    return paths


PRINT_FIELDS = [
    "bill_number", "kind", "status", "estimated", "account", "name", "address", "city", "postcode",
    "period", "issued", "due_date", "tariff", "kwh", "subtotal", "tax", "total", "adjustment",
    "amount_due", "currency", "payment_reference", "replaces",
]  # fmt: skip


def write_print_file(session: Session, bill_ids: Sequence[int], path: str | Path) -> int:
    """The bill print file: one CSV row per bill for a print or mailing house; returns rows."""
    ids = list(bill_ids)
    n = 0
    replaced: dict[int, str] = {}
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, PRINT_FIELDS)
        w.writeheader()
        for i in range(0, len(ids), 500):
            chunk = _load(session, ids[i : i + 500])
            olds = [b.replaces_bill_id for b in chunk if b.replaces_bill_id]
            if olds:
                replaced.update(
                    session.execute(select(Bill.id, Bill.number).where(Bill.id.in_(olds))).tuples()
                )
            for b in chunk:
                party = issued_to(b)
                q = minor_exponent(b.currency)
                w.writerow(
                    {
                        "bill_number": b.number, "kind": b.kind, "status": b.status,
                        "estimated": int(b.estimated),
                        "account": party["account"], "name": party["name"], "address": party["address"],
                        "city": party["city"], "postcode": party["postcode"], "period": b.period,
                        "issued": b.issued_at.date().isoformat(),
                        "due_date": b.due_date.isoformat() if b.due_date else "", "tariff": b.tariff_code,
                        "kwh": f"{b.total_kwh:f}", "subtotal": f"{b.subtotal:.{q}f}", "tax": f"{b.tax:.{q}f}",
                        "total": f"{b.total:.{q}f}", "adjustment": f"{b.adjustment:.{q}f}",
                        "amount_due": f"{amount_due(b):.{q}f}", "currency": b.currency,
                        "payment_reference": f"{party['account']}/{b.number}",
                        "replaces": replaced.get(b.replaces_bill_id, "") if b.replaces_bill_id else "",
                    }
                )  # fmt: skip
                n += 1
    return n


def bills_of_period(session: Session, period: str, cycle: str | None = None) -> list[int]:
    """Ids of the period's bills that are not cancelled (a cycle's batch)."""
    stmt = select(Bill.id).where(Bill.period == period, Bill.status != "cancelled").order_by(Bill.number)
    if cycle:
        stmt = stmt.where(Bill.cycle == cycle)
    return list(session.scalars(stmt))
