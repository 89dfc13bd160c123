"""``m2c bill-run``, ``m2c rebill`` and ``m2c bill``: bill runs, cancel/rebill, bills."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meter2cash.cli.common import console, day, err_console, period, platform, read_json
from meter2cash.cli.render import Key, Num, exact_amount, money, print_json, quantity, table
from meter2cash.cli.tariffs import tariff_or_exit
from meter2cash.core.errors import InvalidInput, NotFound

bill_app = typer.Typer(help="Bills: list, show, render, and rate one from files.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")
PERIOD_HELP = "billing month, YYYY-MM"


def _lines_table(title: str, lines: list[dict[str, Any]], currency: str) -> Any:
    from meter2cash.cis.billing.documents import format_rate

    out = table(title, "Description", Num("Qty"), "Unit", Num("Rate"), Num(f"Amount {currency}"))
    for ln in lines:
        q, r = ln["quantity"], ln["rate"]
        out.add_row(
            ln["description"],
            "" if q is None else quantity(q, grouped=True),
            ln["unit"] or "",
            "" if r is None else format_rate(Decimal(r)),
            exact_amount(ln["amount"]),
        )
    return out


@bill_app.command("calc")
def bill_calc(
    tariff: Path = typer.Option(..., help="tariff TOML file"),
    determinants: Path = typer.Option(..., help="JSON: kwh_total or kwh_by_period, max_demand_kw, …"),
    on: str = typer.Option("", help="pick the version in effect on this day (default: the latest)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Rate one bill from a tariff file and determinants, without a database."""
    from meter2cash.cis.rating.rate import rate_one

    d, _ = tariff_or_exit(tariff)
    det = read_json(determinants)
    v = d.version_on(day(on, "--on")) if on else d.versions[-1]
    if v is None:
        raise NotFound(f"no version of {d.code} on {on}", code="tariff.not_found")
    if not isinstance(det, dict):
        raise InvalidInput(f"{determinants} holds no JSON object", code="determinants.invalid")
    try:
        bill = rate_one(v, det)
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise InvalidInput(f"{determinants}: {exc}", code="determinants.invalid") from exc
    out = bill.to_dict()
    if as_json:
        print_json(out)
        return
    console.print(_lines_table(f"{d.code} from {v.effective_from}", out["lines"], bill.currency))
    cur = bill.currency
    console.print(
        f"Subtotal {money(bill.subtotal, cur)}  Taxes {money(bill.tax, cur)}"
        f"  [bold]Total {cur} {money(bill.total, cur)}[/bold]"
    )
    for name, value in (bill.terms or {}).items():
        console.print(f"  {name.replace('_', ' ')}: {value}", highlight=False)


def bill_run(
    period_: str = typer.Option(..., "--period", help=f"{PERIOD_HELP} (a bimonthly period's first month)"),
    cycle: str = typer.Option("monthly", help="bill cycle code"),
    shadow_tariff: Path | None = typer.Option(None, help="rate under this tariff file; issue nothing"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Rate every active service agreement of a cycle and post the bills to the ledger
    (prepaid agreements get a statement); with --shadow-tariff only report the differences.

    Exit 1 when some agreements could not be billed (each is listed)."""
    from meter2cash.cis.billing.run import run_bills
    from meter2cash.db import transaction

    month = period(period_)
    if shadow_tariff is not None:
        _shadow(month, cycle, shadow_tariff, as_json)
        return
    with platform() as p, transaction(p.sessions) as s:
        columns = (TextColumn("billing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(
            *columns, console=err_console, disable=as_json or not err_console.is_terminal
        ) as progress:
            task = progress.add_task("bills", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = run_bills(
                s,
                month,
                tz=p.settings.timezone,
                currency=p.settings.currency,
                on_progress=tick,
                cycle=cycle,
                usage=p.usage,
                clock=p.clock,
            )
    cur = p.settings.currency
    out = result.to_dict()
    if as_json:
        print_json(out)
    else:
        summary = table(
            f"Bill run {month} (#{result.run_id})",
            "Class",
            "Kind",
            Num("Bills"),
            Num("kWh"),
            Num(f"Amount {cur}"),
        )
        for t in out["totals"]:
            summary.add_row(
                t["customer_class"],
                t["kind"],
                f"{t['count']:,}",
                quantity(t["kwh"], grouped=True),
                money(t["amount"], cur),
            )
        summary.add_row(
            "total", "", f"{len(result.bills):,}", "", money(result.total_amount, cur), style="bold"
        )
        console.print(summary)
        console.print(
            f"{len(result.bills)} bills ({result.statements} prepaid statements,"
            f" {result.estimated} estimated), {result.skipped} already billed,"
            f" {len(result.errors)} not billed"
        )
        _print_errors(result.errors)
    if result.errors:
        raise typer.Exit(1)


def _print_errors(errors: list[dict[str, Any]], shown: int = 20) -> None:
    for e in errors[:shown]:
        err_console.print(
            f"  {escape(str(e.get('service_agreement', '')))}: {e['code']} {escape(str(e['message']))}",
            highlight=False,
        )
    if len(errors) > shown:
        err_console.print(f"  … and {len(errors) - shown} more (--json lists them all)")


def _shadow(month: str, cycle: str, path: Path, as_json: bool) -> None:
    from meter2cash.cis.billing.shadow import shadow_run
    from meter2cash.cis.tariffs.loader import tariff_version_on

    d, _ = tariff_or_exit(path)
    version = tariff_version_on(d, month)
    with platform() as p, p.sessions() as s:
        report = shadow_run(s, month, version, tz=p.settings.timezone, cycle=cycle, usage=p.usage)
    cur = p.settings.currency
    if as_json:
        print_json(
            {
                "period": month,
                "tariff": d.code,
                "effective_from": version.effective_from,
                "current_total": money(report.current_total, cur, grouped=False),
                "shadow_total": money(report.shadow_total, cur, grouped=False),
                "lines": [
                    {
                        "service_agreement": ln.service_agreement,
                        "current": money(ln.current, cur, grouped=False),
                        "shadow": money(ln.shadow, cur, grouped=False),
                        "difference": money(ln.difference, cur, grouped=False),
                    }
                    for ln in report.lines
                ],
            }
        )
        return
    out = table(
        f"Shadow billing {month}: {d.code} from {version.effective_from}",
        Key("Agreement"),
        Num(f"Current {cur}"),
        Num(f"Shadow {cur}"),
        Num("Difference"),
    )
    for ln in sorted(report.lines, key=lambda x: -abs(x.difference))[:30]:
        diff = money(ln.difference, cur)
        out.add_row(
            ln.service_agreement,
            money(ln.current, cur),
            money(ln.shadow, cur),
            diff if diff.startswith("-") else f"+{diff}",
        )
    console.print(out)
    change = report.shadow_total - report.current_total
    console.print(
        f"{len(report.lines)} agreements: current {money(report.current_total, cur)}, shadow "
        f"{money(report.shadow_total, cur)}, difference {'' if change < 0 else '+'}{money(change, cur)};"
        " no bills issued"
    )


def rebill_cmd(
    period_: str = typer.Option("", "--period", help=f"only bills of this period, {PERIOD_HELP}"),
    account: str = typer.Option("", help="only bills of this account number"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the stale bills, change nothing"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel and rebill every bill whose interval data changed after it was issued.

    Exit 1 when some could not be rebilled (each is listed)."""
    from meter2cash.cis.billing.queries import bill_numbers
    from meter2cash.cis.billing.rebill import rebill, stale_bills
    from meter2cash.db import transaction

    month = period(period_) if period_ else None
    new_numbers: list[str] = []
    with platform() as p, transaction(p.sessions) as s:
        stale = stale_bills(s, p.usage_source(s), period=month, account=account or None)
        result = None
        if dry_run or not stale:
            s.rollback()
        else:
            result = rebill(
                s, stale, tz=p.settings.timezone, currency=p.settings.currency, usage=p.usage, clock=p.clock
            )
            new_numbers = bill_numbers(s, result.new_bills)
    errors = result.to_dict()["errors"] if result is not None else []
    if as_json:
        print_json(
            {
                "stale": [{"number": st.number, "period": st.period, "reason": st.reason} for st in stale],
                "dry_run": dry_run,
                "cancelled": [] if result is None else [st.number for st in result.cancelled],
                "new_bills": new_numbers,
                "errors": errors,
            }
        )
    else:
        for st in stale:
            console.print(f"{st.number} ({st.period}): {escape(st.reason)}", highlight=False)
        if result is None:
            console.print(f"{len(stale)} bill(s) to rebill" + (" (dry run)" if dry_run else ""))
        else:
            console.print(
                f"{len(result.cancelled)} bill(s) cancelled and reversed, {len(new_numbers)} rebilled"
                + (f": {', '.join(new_numbers)}" if new_numbers else "")
            )
        _print_errors(errors)
    if errors:
        raise typer.Exit(1)


@bill_app.command("list")
def bill_list(
    account: str = typer.Option("", help="only bills of this account number"),
    period_: str = typer.Option("", "--period", help=f"only bills of this period, {PERIOD_HELP}"),
    status: str = typer.Option("", help="issued, statement or cancelled"),
    kind: str = typer.Option("", help="postpaid or prepaid"),
    estimated: bool | None = typer.Option(
        None, "--estimated/--actual", help="only estimated bills, or only bills on actual reads"
    ),
    limit: int = typer.Option(50, min=1, max=1000, help="at most this many bills"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Bills, newest first, filtered by account, period, status, kind and estimation."""
    from meter2cash.cis.billing.queries import list_bills

    month = period(period_) if period_ else None
    with platform() as p, p.sessions() as s:
        page = list_bills(
            s,
            account=account or None,
            period=month,
            status=status or None,
            kind=kind or None,
            estimated=estimated,
            limit=limit,
        )
    if as_json:
        print_json(
            {
                "total": page.total,
                "items": [
                    b.to_dict() | {"total": money(b.total, b.currency, grouped=False)} for b in page.items
                ],
            }
        )
        return
    if not page.items:
        console.print("no bills match")
        return
    cur = p.settings.currency
    out = table(
        f"Bills ({len(page.items)} of {page.total:,}, newest first)",
        Key("Number"),
        Key("Account"),
        Key("Period"),
        "Status",
        Num("kWh"),
        Num(f"Total {cur}"),
        Key("Due"),
        optional=("Period", "Due"),
    )
    for b in page.items:
        status_text = b.status + (", estimated" if b.estimated else "")
        if b.kind == "prepaid" and b.status != "statement":
            status_text += ", prepaid"
        total = money(b.total, b.currency)
        out.add_row(
            b.number,
            b.account,
            b.period,
            status_text,
            quantity(b.total_kwh, grouped=True),
            total if b.currency == cur else f"{b.currency} {total}",
            str(b.due_date or ""),
        )
    console.print(out)


@bill_app.command("show")
def bill_show(number: str, as_json: bool = JSON_OPTION) -> None:
    """Show a stored bill and its lines; a cancelled bill says so and names its replacement."""
    from meter2cash.cis.billing.queries import bill_lineage, find_bill

    with platform() as p, p.sessions() as s:
        b = find_bill(s, number)
        lineage = bill_lineage(s, b)
        account = b.account.number
        lines = [
            {
                "component": ln.component,
                "description": ln.description,
                "segment": ln.segment,
                "quantity": ln.quantity,
                "unit": ln.unit,
                "rate": ln.rate,
                "amount": ln.amount,
            }
            for ln in b.lines
        ]
        head: dict[str, Any] = {
            "number": b.number,
            "kind": b.kind,
            "status": b.status,
            "account": account,
            "service_agreement": b.service_agreement.number,
            "period": b.period,
            "tariff_code": b.tariff_code,
            "currency": b.currency,
            "issued_at": b.issued_at,
            "due_date": b.due_date,
            "total_kwh": b.total_kwh,
            "estimated": b.estimated,
            "estimated_share": b.estimated_share,
            "cancelled_at": b.cancelled_at,
            "cancel_reason": b.cancel_reason or None,
            "replaces": lineage.replaces,
            "replaced_by": lineage.replaced_by,
        }
        cur = b.currency
        totals = {"subtotal": b.subtotal, "tax": b.tax, "total": b.total, "adjustment": b.adjustment}
    if as_json:
        money_out = {k: money(v, cur, grouped=False) for k, v in totals.items()}
        money_out["amount_due"] = money(totals["total"] + totals["adjustment"], cur, grouped=False)
        print_json(head | money_out | {"lines": lines})
        return
    if head["status"] == "cancelled":
        when = head["cancelled_at"].date().isoformat() if head["cancelled_at"] else "?"
        by = ", ".join(lineage.replaced_by) if lineage.replaced_by else "no bill yet"
        reason = f": {head['cancel_reason']}" if head["cancel_reason"] else ""
        console.print(
            f"[bold white on red] CANCELLED [/bold white on red] [bold]{b.number} was cancelled on {when}"
            f"{escape(reason)}; replaced by {by}. Do not collect it.[/bold]",
            highlight=False,
        )
    console.print(
        f"[bold]{head['number']}[/bold] {head['kind']} · {head['status']} · account {escape(account)}"
        f" · {head['period']}"
        f" · tariff {head['tariff_code']} · {quantity(head['total_kwh'], grouped=True)} kWh"
        f" · estimated {head['estimated_share']:.1%}"
        + (f" · due {head['due_date']}" if head["due_date"] else ""),
        highlight=False,
    )
    if lineage.replaces:
        console.print(f"replaces cancelled bill {lineage.replaces}", highlight=False)
    console.print(
        _lines_table(
            head["number"], [{k: None if v is None else str(v) for k, v in ln.items()} for ln in lines], cur
        )
    )
    console.print(
        f"Subtotal {money(totals['subtotal'], cur)}  Taxes {money(totals['tax'], cur)}"
        f"  [bold]Total {cur} {money(totals['total'], cur)}[/bold]",
        highlight=False,
    )
    if totals["adjustment"]:
        due = totals["total"] + totals["adjustment"]
        console.print(
            f"Adjustment for {lineage.replaces or 'the cancelled bill'} {money(totals['adjustment'], cur)}"
            f"  [bold]Amount due {cur} {money(due, cur)}[/bold]",
            highlight=False,
        )


@bill_app.command("html")
def bill_html(
    number: str,
    out: Path = typer.Option(Path("var/bills"), help="output directory"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Render a bill as an HTML document."""
    from meter2cash.cis.billing.documents import write_bills_html
    from meter2cash.cis.billing.queries import find_bill

    with platform() as p, p.sessions() as s:
        paths = write_bills_html(s, [find_bill(s, number).id], out)
    _wrote(paths, as_json)


@bill_app.command("pdf")
def bill_pdf(
    number: str,
    out: Path = typer.Option(Path("var/bills"), help="output directory"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Render a bill as a PDF document."""
    from meter2cash.cis.billing.pdf import write_bills_pdf
    from meter2cash.cis.billing.queries import find_bill

    with platform() as p, p.sessions() as s:
        paths = write_bills_pdf(s, [find_bill(s, number).id], out)
    _wrote(paths, as_json)


def _wrote(paths: list[Path], as_json: bool) -> None:
    if as_json:
        print_json({"files": [str(x) for x in paths]})
    else:
        console.print(f"wrote {paths[0]}", highlight=False)


@bill_app.command("documents")
def bill_documents(
    period_: str = typer.Option(..., "--period", help=PERIOD_HELP),
    cycle: str = typer.Option("", help="only this bill cycle"),
    out: Path = typer.Option(Path("var/bills"), help="output directory"),
    fmt: str = typer.Option("pdf", "--format", help="pdf or html"),
    print_file: Path | None = typer.Option(None, help="also write the bill print file (CSV) here"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Batch output for a cycle: every bill of the period as PDF or HTML, and the print file."""
    from meter2cash.cis.billing.documents import write_bills_html
    from meter2cash.cis.billing.pdf import bills_of_period, write_bills_pdf, write_print_file

    month = period(period_)
    if fmt not in ("pdf", "html"):
        raise InvalidInput(f"--format {fmt!r} is neither pdf nor html", code="usage.invalid_format")
    with platform() as p, p.sessions() as s:
        ids = bills_of_period(s, month, cycle or None)
        paths = write_bills_pdf(s, ids, out) if fmt == "pdf" else write_bills_html(s, ids, out)
        rows = write_print_file(s, ids, print_file) if print_file else 0
    if as_json:
        print_json(
            {
                "files": [str(x) for x in paths],
                "print_file": str(print_file) if rows else None,
                "print_rows": rows,
            }
        )
        return
    console.print(
        f"wrote {len(paths)} {fmt} bill(s) to {out}" + (f", {rows} row(s) to {print_file}" if rows else ""),
        highlight=False,
    )
