"""Bill documents: an HTML utility bill (Jinja2 template ``web/templates/bill.html``) and plain text."""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, selectinload

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.store import daily_series
from meter2cash.cis.parties.models import Account, ServiceAgreement, ServicePoint
from meter2cash.cis.rating.types import RatedBill
from meter2cash.core.money import minor_exponent
from meter2cash.core.timeutil import month_end, parse_month

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def money(value: Decimal | None, places: int = 2) -> str:
    """``1,234.50`` (grouped, fixed places); empty for ``None``."""
    if value is None:
        return ""
    return f"{value.quantize(Decimal(1).scaleb(-places)):,}"


def issued_to(bill: Bill) -> dict[str, str]:
    """The customer and supply a bill was issued to, as recorded when it was issued (later
    changes of master data do not reach an issued bill); for a bill issued before the record
    existed, the master data as it is now. ``bill`` must be attached to a session."""
    if bill.issued_to:
        return dict(bill.issued_to)
    sa: ServiceAgreement = bill.service_agreement
    sp: ServicePoint = sa.service_point
    return {
        "name": bill.account.person.name,
        "account": bill.account.number,
        "customer_class": bill.account.customer_class,
        "address": sp.premise.address,
        "city": sp.premise.city,
        "postcode": sp.premise.postcode,
        "service_point": sp.code,
        "agreement": sa.number,
        "payment_mode": bill.kind,
        "tariff_code": bill.tariff_code,
    }


def segment_rows(bill: Bill) -> list[dict[str, str]]:
    """The segments of a split bill as printed (dates, tariff, sanctioned load, kWh, amount);
    empty for a bill of one segment. Their kWh and amounts add up to the bill's."""
    segs = (bill.determinants or {}).get("segments") or []
    if len(segs) < 2:
        return []
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for ln in bill.lines:
        if ln.component != "adjustment":
            totals[ln.segment] += ln.amount
    return [
        {
            "dates": f"{_day(sg['first'])} – {_day(sg['last'])}",
            "tariff": str(sg.get("tariff_code") or bill.tariff_code),
            "load": ""
            if sg.get("sanctioned_load_kw") is None
            else f"{Decimal(str(sg['sanctioned_load_kw'])).normalize():f} kW",
            "kwh": _qty(Decimal(str(sg.get("kwh_total", 0)))),
            "amount": money(totals.get(k + 1, Decimal(0)), minor_exponent(bill.currency)),
        }
        for k, sg in enumerate(segs)
    ]


def _qty(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"


def _chart(daily: dict[str, Any] | None, width: int = 640, height: int = 160) -> dict[str, Any] | None:
    """Bar geometry for the daily consumption chart (pure; the template draws the SVG)."""
    dates, values = daily_series(daily)
    if not values:
        return None
    kwh = [float(v) for v in values]
    top = max(max(kwh), 1e-9)
    pad, base = 30, height - 20
    step = (width - pad) / len(kwh)
    bars = [
        {
            "x": round(pad + i * step + 1, 1),
            "w": round(max(step - 2, 1), 1),
            "y": round(base - v / top * (base - 10), 1),
            "h": round(v / top * (base - 10), 1),
            "label": f"{d}: {v:.3f} kWh",
            "day": d[-2:],
        }
        for i, (d, v) in enumerate(zip(dates, kwh, strict=True))
    ]
    return {"width": width, "height": height, "base": base, "pad": pad, "bars": bars, "max": f"{top:.1f}"}


def _period_label(period: str) -> str:
    first = parse_month(period)
    name, last = calendar.month_abbr[first.month], month_end(first)
    return f"01 {name} {first.year} – {last.day:02d} {name} {first.year}"


def _day(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%d %b")


def bill_meters(det: dict[str, Any]) -> list[dict[str, Any]]:
    """The meters a bill read when there were several (a meter exchange), over all segments.
    ``from``/``until`` are days of the period, the same in every segment."""
    seen: dict[str, dict[str, Any]] = {}
    for part in [det, *(det.get("segments") or [])]:
        for m in part.get("meters") or []:
            seen.setdefault(m["serial"], m)
    return sorted(seen.values(), key=lambda m: m["from"] or "")


def supply_notes(det: dict[str, Any]) -> list[str]:
    """Lines for the bill document when the supply changed inside the period: the meters read
    across an exchange (``Meter M-1 until 14 Oct, M-2 from 14 Oct``) and the sanctioned load or
    contract demand of each segment after a load change."""
    notes = []
    meters = bill_meters(det)
    if len(meters) > 1:
        parts = [
            m["serial"]
            + (f" from {_day(m['from'])}" if m["from"] else "")
            + (f" until {_day(m['until'])}" if m["until"] else "")
            for m in meters
        ]
        notes.append("Meter " + ", ".join(parts))
    segs = det.get("segments") or []
    for key, label, unit in (("sanctioned_load_kw", "Sanctioned load", "kW"),
                             ("contract_demand_kva", "Contract demand", "kVA")):  # fmt: skip
        values = [(s.get(key), s["first"], s["last"]) for s in segs]
        if len({v for v, _, _ in values}) < 2:
            continue
        parts = []
        for k, (v, first, last) in enumerate(values):
            amount = "none" if v is None else f"{Decimal(str(v)).normalize():f} {unit}"
            when = f"until {_day(last)}" if k == 0 else f"from {_day(first)}"
            if 0 < k < len(values) - 1:
                when = f"{_day(first)}–{_day(last)}"
            parts.append(f"{amount} {when}")
        notes.append(f"{label} " + ", ".join(parts))
    return notes


def render_bill_html(
    bill: Bill,
    *,
    history: list[tuple[str, Decimal]] | None = None,
    utility_name: str = "meter2cash demo utility",
    replaced_by: str = "",
) -> str:
    """A printable utility bill as one self-contained HTML page: what was billed, as issued.

    ``bill`` must be attached to a session (its lines are read, and for a bill issued before
    bills recorded their customer, the master data); ``history`` lists earlier
    ``(period, kWh)`` shown beside this period's consumption; ``replaced_by``: the number of
    the bill that replaced a cancelled one.
    """
    det = bill.determinants or {}
    places = minor_exponent(bill.currency)
    periods = [
        {
            "name": name,
            "kwh": _qty(Decimal(str(kwh))),
            "md": _qty(Decimal(str(det.get("max_demand_kw_by_period", {}).get(name, 0)))),
        }
        for name, kwh in (det.get("kwh_by_period") or {}).items()
    ]
    lines = [
        {
            "description": ln.description,
            "quantity": _qty(ln.quantity),
            "unit": ln.unit,
            "rate": "" if ln.rate is None else format_rate(ln.rate),
            "amount": money(ln.amount, places),
            "tax": ln.component == "tax",
            "adjustment": ln.component == "adjustment",
        }
        for ln in bill.lines
    ]
    party = issued_to(bill)
    return _env.get_template("bill.html").render(
        utility_name=utility_name,
        bill=bill,
        party=party,
        period_label=_period_label(bill.period),
        periods=periods,
        det=det,
        segments=segment_rows(bill),
        charges=[ln for ln in lines if not ln["tax"] and not ln["adjustment"]],
        adjustments=[ln for ln in lines if ln["adjustment"]],
        amount_due=money(bill.total + (bill.adjustment or 0), places),
        terms=det.get("terms") or {},
        taxes=[ln for ln in lines if ln["tax"]],
        subtotal=money(bill.subtotal, places),
        tax=money(bill.tax, places),
        total=money(bill.total, places),
        chart=_chart(det.get("daily_kwh")),
        history=[(p, _qty(k)) for p, k in (history or [])],
        payment_reference=f"{party['account']}/{bill.number}",
        estimated_pct=f"{bill.estimated_share * 100:.1f}",
        supply_notes=supply_notes(det),
        replaced_by=replaced_by or replacement_of(bill),
    )


def history_for(session: Session, bill: Bill, n: int = 12) -> list[tuple[str, Decimal]]:
    """``(period, kWh)`` of up to ``n`` earlier bills of the agreement (cancelled and shadow
    bills left out: a rebilled period counts once)."""
    rows = session.execute(
        select(Bill.period, Bill.total_kwh)
        .where(
            Bill.service_agreement_id == bill.service_agreement_id,
            Bill.period < bill.period,
            Bill.status.not_in(("cancelled", "shadow")),
        )
        .order_by(Bill.period.desc())
        .limit(n)
    ).all()
    return [(p, k) for p, k in rows][::-1]


def replacement_of(bill: Bill) -> str:
    """The number of the bill that replaced ``bill`` (empty when none)."""
    session = object_session(bill)
    if session is None or bill.status != "cancelled":
        return ""
    return session.scalar(select(Bill.number).where(Bill.replaces_bill_id == bill.id)) or ""


def write_bills_html(session: Session, bill_ids: Sequence[int], out_dir: str | Path) -> list[Path]:
    """Render bills to ``out_dir/<number>.html`` with up to 6 earlier periods of history."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    ids = list(bill_ids)
    for i in range(0, len(ids), 500):
        bills = session.scalars(
            select(Bill)
            .where(Bill.id.in_(ids[i : i + 500]))
            .options(
                selectinload(Bill.lines),
                selectinload(Bill.account).selectinload(Account.person),
                selectinload(Bill.service_agreement).selectinload(ServiceAgreement.service_point),
            )
        )
        for bill in bills:
            history = history_for(session, bill, 6)
            path = out / f"{bill.number}.html"
            path.write_text(render_bill_html(bill, history=history), encoding="utf-8")
            paths.append(path)
    return paths


def format_rate(rate: Decimal) -> str:
    """A rate or amount as printed: trailing zeros dropped, at least two decimals (4.6 → 4.60).

    Stored amounts carry 4 decimals; a line rounded per bill may use them, every other shows 2.
    """
    text = f"{rate.normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def render_bill_text(bill: RatedBill) -> str:
    """A rated bill as fixed-width plain text lines (golden tests, ``m2c bill calc``)."""
    head = f"{'Description':<52}{'Qty':>10} {'Unit':<5}{'Rate':>9}{'Amount':>13}"
    out = [f"Tariff {bill.tariff_code} ({bill.currency})", head, "-" * len(head)]
    for ln in bill.lines:
        rate = "" if ln.rate is None else f"{ln.rate:f}"
        out.append(f"{ln.description[:52]:<52}{_qty(ln.quantity):>10} {ln.unit:<5}{rate:>9}{ln.amount:>13}")
    out.append("-" * len(head))
    for label, value in (("Subtotal", bill.subtotal), ("Taxes", bill.tax), ("Total", bill.total)):
        out.append(f"{label:<77}{value:>13}")
    t = bill.terms
    if t.get("prompt_payment_rebate"):
        out.append(
            f"Prompt-payment rebate if paid within {t['prompt_payment_days']} days: "
            f"{t['prompt_payment_rebate']}"
        )
    if t.get("late_payment_surcharge_percent"):
        out.append(
            f"Late-payment surcharge {t['late_payment_surcharge_percent']}% a month after the due date: "
            f"{t['late_payment_surcharge']}"
        )
    if "banked_kwh" in t:
        out.append(f"Banked export carried forward: {t['banked_kwh']} kWh")
    return "\n".join(line.rstrip() for line in out) + "\n"
