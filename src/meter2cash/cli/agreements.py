"""``m2c agreement``: service agreements' contract terms (sanctioned load, contract demand,
tariff, payment mode), each changed from a date."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING

import typer

from meter2cash.cli.common import console, err_console, platform
from meter2cash.cli.render import Key, Num, table
from meter2cash.core.money import format_money

if TYPE_CHECKING:
    from meter2cash.cis.billing.rebill import RebillResult

app = typer.Typer(
    help="Service agreements: load, tariff and payment-mode changes; contract terms.", no_args_is_help=True
)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]error[/red] contract.invalid_date: {value!r} is not a date YYYY-MM-DD")
        raise typer.Exit(2) from None


@app.command("change-load")
def change_load_cmd(
    number: str = typer.Argument(..., help="service agreement number, e.g. SA-1002"),
    effective_from: str = typer.Option(..., "--from", help="first day of the new load, YYYY-MM-DD"),
    kw: str = typer.Option(..., "--kw", help="sanctioned load [kW]"),
    kva: str = typer.Option(None, "--kva", help="contract demand [kVA] (default: unchanged)"),
    reason: str = typer.Option(..., "--reason", help="why the load changes (kept with the term)"),
    by: str = typer.Option("cli", "--by", help="who records the change"),
    rebill: bool = typer.Option(
        False, "--rebill", help="cancel and rebill the issued bills the change reaches"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Record a change of sanctioned load (and contract demand) from a date on.

    Bills of periods reaching that date split there: charges per kW or kVA prorate by the days
    under each load. Bills already issued for those periods are listed; ``--rebill`` cancels them
    and bills the periods again.
    """
    from meter2cash.cis.billing.queries import bill_numbers
    from meter2cash.cis.contracts.changes import change_load, rebill_affected

    day = _date(effective_from)
    new_numbers: list[str] = []
    with platform() as p, p.sessions() as s:
        result = change_load(s, number, day, kw, kva, reason=reason, by=by)
        rebilled = None
        if rebill and result.bills_affected:
            rebilled = rebill_affected(
                s, result, tz=p.settings.timezone, currency=p.settings.currency, usage=p.usage
            )
            new_numbers = bill_numbers(s, rebilled.new_bills)
        s.commit()
    if as_json:
        out = result.to_dict()
        if rebilled is not None:
            out["rebill"] = rebilled.to_dict() | {"new_bills": new_numbers}
        console.print_json(json.dumps(out))
        return
    t = result.term
    kva_text = "" if t.contract_kva is None else f", contract demand {t.contract_kva.normalize():f} kVA"
    console.print(
        f"[green]recorded[/green] {result.agreement}: sanctioned load {t.sanctioned_kw.normalize():f} kW"
        f"{kva_text} from {t.effective_from}" + ("" if result.current else " (not the latest term)")
    )
    _report_rebill(result.bills_affected, rebilled, new_numbers, "the earlier load")


@app.command("change-tariff")
def change_tariff_cmd(
    number: str = typer.Argument(..., help="service agreement number, e.g. SA-1002"),
    effective_from: str = typer.Option(..., "--from", help="first day on the new tariff, YYYY-MM-DD"),
    tariff: str = typer.Option(..., "--tariff", help="code of a loaded tariff"),
    reason: str = typer.Option(..., "--reason", help="why the tariff changes (kept with the term)"),
    by: str = typer.Option("cli", "--by", help="who records the change"),
    rebill: bool = typer.Option(
        False, "--rebill", help="cancel and rebill the issued bills the change reaches"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Put an agreement on another tariff from a date on (a dated term; also in the future).

    Bills of periods reaching that date split there, each part rated on its tariff. Bills already
    issued for those periods are listed; ``--rebill`` cancels them and bills the periods again.
    """
    from meter2cash.cis.billing.queries import bill_numbers
    from meter2cash.cis.contracts.changes import change_tariff, rebill_affected

    day = _date(effective_from)
    new_numbers: list[str] = []
    with platform() as p, p.sessions() as s:
        result = change_tariff(s, number, day, tariff, reason=reason, by=by)
        rebilled = None
        if rebill and result.bills_affected:
            cfg = p.settings
            rebilled = rebill_affected(
                s, result, tz=cfg.timezone, currency=cfg.currency, usage=p.usage, what="tariff"
            )
            new_numbers = bill_numbers(s, rebilled.new_bills)
        s.commit()
    if as_json:
        out = result.to_dict() | {"previous_tariff_code": result.previous["tariff_code"]}
        if rebilled is not None:
            out["rebill"] = rebilled.to_dict() | {"new_bills": new_numbers}
        console.print_json(json.dumps(out))
        return
    console.print(
        f"[green]recorded[/green] {result.agreement}: tariff {result.term.tariff_code} from "
        f"{result.term.effective_from} (was {result.previous['tariff_code']})"
        + ("" if result.current else " (not the latest term)"),
        highlight=False,
    )
    _report_rebill(result.bills_affected, rebilled, new_numbers, "the earlier tariff")


@app.command("change-mode")
def change_mode_cmd(
    number: str = typer.Argument(..., help="service agreement number, e.g. SA-1003"),
    effective_from: str = typer.Option(
        ..., "--from", help="first day in the new mode, YYYY-MM-DD (today at the latest)"
    ),
    to_mode: str = typer.Option(..., "--to", help="prepaid or postpaid"),
    reason: str = typer.Option(..., "--reason", help="why the mode changes (kept with the term)"),
    by: str = typer.Option("cli", "--by", help="who records the change"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Switch an agreement between prepaid and postpaid from a date on.

    The prepaid engine charges only prepaid days and the bill run bills only postpaid days, so no
    day is charged twice. Issued bills of periods reaching the date are cancelled and billed
    again, and the balance moves into the new mode (a wallet credit to receivables, a receivable
    debt or credit into the wallet).
    """
    from meter2cash.cis.billing.queries import bill_numbers
    from meter2cash.cis.contracts.payment_mode import change_payment_mode
    from meter2cash.core.timeutil import utcnow

    day = _date(effective_from)
    with platform() as p, p.sessions() as s:
        cfg = p.settings
        today = utcnow().astimezone(cfg.tz).date()
        done = change_payment_mode(
            s,
            number,
            day,
            to_mode,
            reason=reason,
            by=by,
            today=today,
            tz=cfg.timezone,
            currency=cfg.currency,
            usage=p.usage,
        )
        new_numbers = bill_numbers(s, done.rebill.new_bills) if done.rebill is not None else []
        s.commit()
    if as_json:
        out = done.to_dict()
        if done.rebill is not None:
            out["rebill"] = out["rebill"] | {"new_bills": new_numbers}
        console.print_json(json.dumps(out))
        return
    moved = done.settled
    what = (
        "nothing to settle"
        if moved == 0
        else f"{'credit' if moved > 0 else 'debt'} of {format_money(abs(moved), cfg.currency)} "
        f"moved {'into the wallet' if done.to_mode == 'prepaid' else 'to receivables'}"
    )
    console.print(
        f"[green]recorded[/green] {done.change.agreement}: {done.from_mode} → {done.to_mode} from "
        f"{done.change.term.effective_from}; {what}",
        highlight=False,
    )
    _report_rebill(done.change.bills_affected, done.rebill, new_numbers, "the earlier mode")


def _report_rebill(
    affected: list[str], rebilled: RebillResult | None, new_numbers: list[str], under: str
) -> None:
    """What a change did to the bills it reaches (rebilled, or named to rebill by hand)."""
    if rebilled is not None:
        errors = "; ".join(f"{e['code']} {e['message']}" for r in rebilled.runs for e in r.errors)
        console.print(
            f"[green]rebilled[/green] {', '.join(affected)}: new bill(s) {', '.join(new_numbers) or 'none'}",
            highlight=False,
        )
        if errors:
            err_console.print(f"[red]not rebilled[/red] {errors}")
    elif affected:
        console.print(
            f"[yellow]issued bills rated under {under}:[/yellow] {', '.join(affected)}"
            " (rebill them with --rebill)"
        )


@app.command("terms")
def terms_cmd(
    number: str = typer.Argument(..., help="service agreement number"),
    as_json: bool = typer.Option(False, "--json", help="print the terms as JSON"),
) -> None:
    """The agreement's contract terms, oldest first."""
    from meter2cash.cis.contracts.changes import agreement_by_number, terms_of

    with platform() as p, p.sessions() as s:
        sa = agreement_by_number(s, number)
        terms = terms_of(s, sa)
        current = (sa.sanctioned_load_kw, sa.contract_demand_kva)
    if as_json:
        console.print_json(json.dumps({"agreement": number, "terms": [t.to_dict() for t in terms]}))
        return
    if not terms:
        kva = "" if current[1] is None else f", contract demand {current[1].normalize():f} kVA"
        console.print(f"{number}: no changes of terms; sanctioned load {current[0].normalize():f} kW{kva}")
        return
    report = table(
        f"Contract terms of {number}", Key("From"), Num("kW"), Num("kVA"), Key("Mode"), Key("Tariff"),
        "Reason", "By", optional=("By",),
    )  # fmt: skip
    for t in terms:
        kva = "" if t.contract_kva is None else f"{t.contract_kva.normalize():f}"
        report.add_row(
            str(t.effective_from), f"{t.sanctioned_kw.normalize():f}", kva, t.payment_mode, t.tariff_code,
            t.reason, t.created_by,
        )  # fmt: skip
    console.print(report)
