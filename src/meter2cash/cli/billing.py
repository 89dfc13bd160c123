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
    if v.energy:
        lo = "0"
        for slab in v.energy.slabs:
            hi = str(slab.upto) if slab.upto is not None else "∞"
            table.add_row(f"energy ({v.energy.method})", f"{lo}–{hi} kWh", str(slab.rate))
            lo = hi
    if v.tou:
        for per in v.tou.periods:
            price = f"rate {per.rate}" if per.rate is not None else f"adder {per.adder}"
            table.add_row("tou", f"{per.name} {per.start}–{per.end} {'/'.join(per.days)}", price)
    if v.demand:
        table.add_row(
            "demand", f"per kW max demand ({v.demand.interval_s // 60}-min)", str(v.demand.rate_per_kw)
        )
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


def bill_run(period: str = typer.Option(..., help="billing month, YYYY-MM")) -> None:
    """Rate every active service agreement for a month and post the bills to the ledger."""
    from meter2cash.cis.billing import run_bills
    from meter2cash.db import transaction

    with platform() as p, transaction(p.sessions) as s:
        columns = (TextColumn("billing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("bills", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = run_bills(
                s, period, tz=p.settings.timezone, currency=p.settings.currency, on_progress=tick
            )
    table = Table(title=f"Bill run {period} (#{result.run_id})")
    for col in ("Class", "Kind", "Bills", "kWh", f"Amount {p.settings.currency}"):
        table.add_column(col, justify="right" if col not in ("Class", "Kind") else "left")
    for t in result.to_dict()["totals"]:
        table.add_row(t["customer_class"], t["kind"], str(t["count"]), t["kwh"], t["amount"])
    table.add_row("[bold]total[/bold]", "", str(len(result.bills)), "", f"[bold]{result.total_amount}[/bold]")
    console.print(table)
    console.print(
        f"{len(result.bills)} bills, {result.skipped} already billed, {len(result.errors)} not billed"
    )
    for e in result.errors[:20]:
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
