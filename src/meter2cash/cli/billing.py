"""``m2c tariff``, ``m2c bill-run``, ``m2c bill`` and ``m2c ledger``."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.models import Bill
from meter2cash.cli.common import console, err_console, platform
from meter2cash.core.errors import M2CError, NotFound

tariff_app = typer.Typer(help="Tariffs: validate, load and show tariff files.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
bill_app = typer.Typer(help="Bills: calculate, show and render.", no_args_is_help=True)


def _lines_table(title: str, lines: list[dict[str, str | None]], currency: str) -> Table:
    table = Table(title=title)
    for col, kw in (
        ("Description", {}),
        ("Qty", {"justify": "right"}),
        ("Unit", {}),
        ("Rate", {"justify": "right"}),
        (f"Amount {currency}", {"justify": "right"}),
    ):
        table.add_column(col, justify=kw.get("justify", "left"))  # type: ignore[arg-type]
    for ln in lines:
        table.add_row(
            ln["description"], ln["quantity"] or "", ln["unit"] or "", ln["rate"] or "", ln["amount"]
        )
    return table


@tariff_app.command("validate")
def tariff_validate(files: list[Path] = typer.Argument(..., help="tariff TOML files")) -> None:
    """Check tariff files; exit 1 and name every bad field if one is invalid."""
    from meter2cash.cis.tariffs import TariffFileError, load_tariff_file

    bad = 0
    for f in files:
        try:
            d = load_tariff_file(f)
        except TariffFileError as exc:
            bad += 1
            err_console.print(f"[red]invalid[/red] {f}")
            for p in exc.problems:
                err_console.print(f"  {p.field or ''}: {p.message}  [dim]({p.code})[/dim]")
            continue
        console.print(f"[green]ok[/green] {f}: {d.code} with {len(d.versions)} version(s)")
    if bad:
        raise typer.Exit(1)


@tariff_app.command("load")
def tariff_load(files: list[Path] = typer.Argument(..., help="tariff TOML files")) -> None:
    """Validate and store tariff files (idempotent; a changed version is refused)."""
    from meter2cash.cis.tariffs import TariffFileError, load_tariff_file, store_tariff
    from meter2cash.db import transaction

    defs = []
    for f in files:
        try:
            defs.append((load_tariff_file(f), f.read_text(encoding="utf-8")))
        except TariffFileError as exc:
            err_console.print(f"[red]invalid[/red] {exc.message}")
            raise typer.Exit(1) from exc
    with platform() as p, transaction(p.sessions) as s:
        for d, text in defs:
            rows = store_tariff(s, d, text)
            console.print(f"loaded {d.code}: versions from {', '.join(str(r.effective_from) for r in rows)}")


@tariff_app.command("show")
def tariff_show(code: str, on: str = typer.Option("", help="date YYYY-MM-DD (default: today)")) -> None:
    """Show the version of a tariff in effect on a day."""
    from meter2cash.cis.tariffs import tariff_version_for

    with platform() as p, p.sessions() as s:
        day = date.fromisoformat(on) if on else datetime.now(p.settings.tz).date()
        row, v = tariff_version_for(s, code, day)
    table = Table(title=f"{code} — {v.name} ({v.currency}, {v.customer_class}) from {row.effective_from}")
    table.add_column("Component")
    table.add_column("Detail")
    table.add_column("Rate", justify="right")
    if v.fixed.per_month:
        table.add_row("fixed", "per month", str(v.fixed.per_month))
    if v.fixed.per_kw_month:
        table.add_row("fixed", "per kW sanctioned load per month", str(v.fixed.per_kw_month))
    if v.fixed.per_day:
        table.add_row("fixed", "per day of supply", str(v.fixed.per_day))
    if v.fixed.per_kva_month:
        table.add_row("fixed", "per kVA contract demand per month", str(v.fixed.per_kva_month))
    if v.energy:
        unit = "kVAh" if v.energy.basis == "kvah" else "kWh"
        for k, tab in enumerate(v.energy.all_tables):
            lo = "0"
            within = f" if total ≤ {tab.upto}" if tab.upto is not None else (" otherwise" if k else "")
            for slab in tab.slabs:
                hi = str(slab.upto) if slab.upto is not None else "∞"
                table.add_row(f"energy ({tab.method}){within}", f"{lo}–{hi} {unit}", str(slab.rate))
                lo = hi
    if v.tou:
        for per in v.tou.periods:
            price = (
                f"rate {per.rate}"
                if per.rate is not None
                else f"adder {per.adder}"
                if per.adder is not None
                else f"slab rates {', '.join(str(r) for r in per.slab_rates or [])} ({v.tou.tier_split})"
            )
            months = f" months {','.join(map(str, per.months))}" if per.months else ""
            table.add_row("tou", f"{per.name} {per.start}–{per.end} {'/'.join(per.days)}{months}", price)
    if v.demand:
        dm = v.demand
        floors = [
            f"{label} {pct}%"
            for label, pct in (
                ("sanctioned", dm.floor_percent),
                ("contract", dm.contract_percent),
                (f"ratchet {dm.ratchet_months} months", dm.ratchet_percent),
            )
            if pct
        ]
        extra = f" ≥ {', '.join(floors)}" if floors else ""
        table.add_row(
            "demand", f"per kW billing demand ({dm.interval_s // 60}-min){extra}", str(dm.rate_per_kw)
        )
        for name, rate in dm.by_period.items():
            table.add_row("demand", f"per kW max demand in {name}", str(rate))
    if v.power_factor:
        pf = v.power_factor
        table.add_row(
            "power factor",
            f"below {pf.reference}: +{pf.penalty_percent}% per {pf.step}; above {pf.incentive_above}: "
            f"-{pf.incentive_percent}% per {pf.step}",
            ", ".join(pf.on),
        )
    if v.minimum:
        table.add_row("minimum", f"per month on {', '.join(v.minimum.on)}", str(v.minimum.per_month))
    if v.fuel_adjustment:
        for month, rate in sorted(v.fuel_adjustment.per_kwh.items()):
            table.add_row("fuel adjustment", f"{month} per kWh", str(rate))
    if v.net_metering:
        nm = v.net_metering
        table.add_row(
            "net metering", f"{nm.mode}, true-up month {nm.true_up_month}", f"export {nm.export_rate}"
        )
    pt = v.payment_terms
    if pt.prompt_percent:
        table.add_row("terms", f"prompt-payment rebate within {pt.prompt_days} days", f"{pt.prompt_percent}%")
    if pt.late_percent:
        table.add_row("terms", "late-payment surcharge per month", f"{pt.late_percent}%")
    for t in v.taxes:
        table.add_row("tax", f"{t.name} on {', '.join(t.on)}", f"{t.percent}%")
    if v.prepaid_discount_per_kwh:
        table.add_row("prepaid discount", "per kWh", str(v.prepaid_discount_per_kwh))
    console.print(table)


@bill_app.command("calc")
def bill_calc(
    tariff: Path = typer.Option(..., help="tariff TOML file"),
    determinants: Path = typer.Option(..., help="JSON: kwh_total or kwh_by_period, max_demand_kw, …"),
    on: str = typer.Option("", help="pick the version in effect on this day (default: the latest)"),
) -> None:
    """Rate one bill from a tariff file and determinants, without a database."""
    from meter2cash.cis.rating import rate_one
    from meter2cash.cis.tariffs import TariffFileError, load_tariff_file

    try:
        d = load_tariff_file(tariff)
        det = json.loads(determinants.read_text(encoding="utf-8"))
        v = d.version_on(date.fromisoformat(on)) if on else d.versions[-1]
        if v is None:
            raise M2CError(f"no version of {d.code} on {on}", code="tariff.not_found")
        bill = rate_one(v, det)
    except (TariffFileError, M2CError) as exc:
        err_console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc
    out = bill.to_dict()
    console.print(_lines_table(f"{d.code} from {v.effective_from}", out["lines"], bill.currency))
    console.print(
        f"Subtotal {bill.subtotal}  Taxes {bill.tax}  [bold]Total {bill.currency} {bill.total}[/bold]"
    )
    console.print_json(json.dumps(out))


def bill_run(
    period: str = typer.Option(..., help="billing month, YYYY-MM (a bimonthly period's first month)"),
    cycle: str = typer.Option("monthly", help="bill cycle code"),
    shadow_tariff: Path | None = typer.Option(None, help="rate under this tariff file; issue nothing"),
) -> None:
    """Rate every active service agreement of a cycle and post the bills to the ledger
    (prepaid agreements get a statement); with --shadow-tariff only report the differences."""
    from meter2cash.cis.billing import run_bills
    from meter2cash.db import transaction

    if shadow_tariff is not None:
        _shadow(period, cycle, shadow_tariff)
        return
    with platform() as p, transaction(p.sessions) as s:
        columns = (TextColumn("billing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("bills", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = run_bills(
                s, period, tz=p.settings.timezone, currency=p.settings.currency, on_progress=tick, cycle=cycle
            )
    table = Table(title=f"Bill run {period} (#{result.run_id})")
    for col in ("Class", "Kind", "Bills", "kWh", f"Amount {p.settings.currency}"):
        table.add_column(col, justify="right" if col not in ("Class", "Kind") else "left")
    for t in result.to_dict()["totals"]:
        table.add_row(t["customer_class"], t["kind"], str(t["count"]), t["kwh"], t["amount"])
    table.add_row("[bold]total[/bold]", "", str(len(result.bills)), "", f"[bold]{result.total_amount}[/bold]")
    console.print(table)
    console.print(
        f"{len(result.bills)} bills ({result.statements} prepaid statements, {result.estimated} estimated), "
        f"{result.skipped} already billed, {len(result.errors)} not billed"
    )
    for e in result.errors[:20]:
        err_console.print(f"  {e['service_agreement']}: {e['code']} {e['message']}")


def _shadow(period: str, cycle: str, path: Path) -> None:
    from meter2cash.cis.shadow import shadow_run
    from meter2cash.cis.tariffs import TariffFileError, load_tariff_file
    from meter2cash.cis.tariffs.loader import tariff_version_on

    try:
        d = load_tariff_file(path)
    except TariffFileError as exc:
        err_console.print(f"[red]invalid[/red] {exc.message}")
        raise typer.Exit(1) from exc
    version = tariff_version_on(d, period)
    with platform() as p, p.sessions() as s:
        report = shadow_run(s, period, version, tz=p.settings.timezone, cycle=cycle)
    table = Table(title=f"Shadow billing {period}: {d.code} from {version.effective_from}")
    for col in ("Agreement", "Current", "Shadow", "Difference"):
        table.add_column(col, justify="left" if col == "Agreement" else "right")
    for ln in sorted(report.lines, key=lambda x: -abs(x.difference))[:30]:
        table.add_row(
            ln.service_agreement, f"{ln.current:,.2f}", f"{ln.shadow:,.2f}", f"{ln.difference:+,.2f}"
        )
    console.print(table)
    console.print(
        f"{len(report.lines)} agreements: current {report.current_total:,.2f}, shadow "
        f"{report.shadow_total:,.2f}, difference {report.shadow_total - report.current_total:+,.2f}; "
        "no bills issued"
    )


def rebill_cmd(
    period: str = typer.Option("", help="only bills of this period, YYYY-MM"),
    account: str = typer.Option("", help="only bills of this account number"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the stale bills, change nothing"),
) -> None:
    """Cancel and rebill every bill whose interval data changed after it was issued."""
    from meter2cash.cis.rebill import rebill, stale_bills
    from meter2cash.db import transaction

    with platform() as p, transaction(p.sessions) as s:
        stale = stale_bills(s, period=period or None, account=account or None)
        for st in stale:
            console.print(f"{st.number} ({st.period}): {st.reason}")
        if dry_run or not stale:
            console.print(f"{len(stale)} bill(s) to rebill" + (" (dry run)" if dry_run else ""))
            s.rollback()
            return
        result = rebill(s, stale, tz=p.settings.timezone, currency=p.settings.currency)
    console.print(f"{len(result.cancelled)} bill(s) cancelled and reversed, {len(result.new_bills)} rebilled")
    for e in result.to_dict()["errors"][:20]:
        err_console.print(f"  {e['service_agreement']}: {e['code']} {e['message']}")


def _find_bill(s: Session, number: str) -> Bill:
    bill = s.scalars(select(Bill).where(Bill.number == number)).first()
    if bill is None:
        raise NotFound(f"no bill {number}", code="billing.bill_not_found")
    return bill


@bill_app.command("show")
def bill_show(number: str) -> None:
    """Show a stored bill and its lines."""
    from meter2cash.cis.documents import format_rate

    with platform() as p, p.sessions() as s:
        b = _find_bill(s, number)
        console.print(
            f"[bold]{b.number}[/bold] {b.kind} · account {b.account.number} · {b.period}"
            f" · tariff {b.tariff_code}"
            f" · {b.total_kwh} kWh · estimated {b.estimated_share:.1%}"
            + (f" · due {b.due_date}" if b.due_date else "")
        )
        lines = [
            {
                "description": ln.description,
                "quantity": None if ln.quantity is None else f"{ln.quantity.normalize():f}",
                "unit": ln.unit,
                "rate": None if ln.rate is None else format_rate(ln.rate),
                "amount": format_rate(ln.amount),
            }
            for ln in b.lines
        ]
        console.print(_lines_table(b.number, lines, b.currency))
        console.print(
            f"Subtotal {format_rate(b.subtotal)}  Taxes {format_rate(b.tax)}"
            f"  [bold]Total {b.currency} {format_rate(b.total)}[/bold]"
        )


@bill_app.command("html")
def bill_html(number: str, out: Path = typer.Option(Path("var/bills"), help="output directory")) -> None:
    """Render a bill as an HTML document."""
    from meter2cash.cis.documents import write_bills_html

    with platform() as p, p.sessions() as s:
        paths = write_bills_html(s, [_find_bill(s, number).id], out)
    console.print(f"wrote {paths[0]}")


@bill_app.command("pdf")
def bill_pdf(number: str, out: Path = typer.Option(Path("var/bills"), help="output directory")) -> None:
    """Render a bill as a PDF document."""
    from meter2cash.cis.bill_print import write_bills_pdf

    with platform() as p, p.sessions() as s:
        paths = write_bills_pdf(s, [_find_bill(s, number).id], out)
    console.print(f"wrote {paths[0]}")


@bill_app.command("documents")
def bill_documents(
    period: str = typer.Option(..., help="billing period, YYYY-MM"),
    cycle: str = typer.Option("", help="only this bill cycle"),
    out: Path = typer.Option(Path("var/bills"), help="output directory"),
    fmt: str = typer.Option("pdf", "--format", help="pdf or html"),
    print_file: Path | None = typer.Option(None, help="also write the bill print file (CSV) here"),
) -> None:
    """Batch output for a cycle: every bill of the period as PDF or HTML, and the print file."""
    from meter2cash.cis.bill_print import bills_of_period, write_bills_pdf, write_print_file
    from meter2cash.cis.documents import write_bills_html

    with platform() as p, p.sessions() as s:
        ids = bills_of_period(s, period, cycle or None)
        paths = write_bills_pdf(s, ids, out) if fmt == "pdf" else write_bills_html(s, ids, out)
        rows = write_print_file(s, ids, print_file) if print_file else 0
    console.print(
        f"wrote {len(paths)} {fmt} bill(s) to {out}" + (f", {rows} row(s) to {print_file}" if rows else "")
    )


@ledger_app.command("trial-balance")
def trial_balance_cmd() -> None:
    """Debits and credits per ledger account; the total must be 0.00."""
    from meter2cash.cis.ledger import trial_balance

    with platform() as p, p.sessions() as s:
        tb = trial_balance(s)
    table = Table(title="Trial balance")
    table.add_column("Account")
    table.add_column("Name")
    for col in ("Debit", "Credit", "Balance"):
        table.add_column(col, justify="right")
    for r in tb.rows:
        table.add_row(r.code, r.name, f"{r.debit:,.2f}", f"{r.credit:,.2f}", f"{r.balance:,.2f}")
    table.add_row(
        "", "[bold]total[/bold]", f"{tb.total_debit:,.2f}", f"{tb.total_credit:,.2f}", f"{tb.total:,.2f}"
    )
    console.print(table)
    if tb.total != 0:
        err_console.print(f"[red]the ledger does not balance: {tb.total}[/red]")
        raise typer.Exit(1)
