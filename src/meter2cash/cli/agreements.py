"""``m2c agreement``: service agreements' contract terms (sanctioned load, contract demand)."""

from __future__ import annotations

import json
from datetime import date

import typer
from rich.table import Table

from meter2cash.cli.common import console, err_console, platform

app = typer.Typer(help="Service agreements: load changes and contract terms.", no_args_is_help=True)


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
    from meter2cash.cis.contracts import change_load, rebill_affected
    from meter2cash.cis.queries import bill_numbers

    day = _date(effective_from)
    new_numbers: list[str] = []
    with platform() as p, p.sessions() as s:
        result = change_load(s, number, day, kw, kva, reason=reason, by=by)
        rebilled = None
        if rebill and result.bills_affected:
            rebilled = rebill_affected(s, result, tz=p.settings.timezone, currency=p.settings.currency)
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
    if rebilled is not None:
        errors = "; ".join(f"{e['code']} {e['message']}" for r in rebilled.runs for e in r.errors)
        numbers = ", ".join(result.bills_affected)
        console.print(
            f"[green]rebilled[/green] {numbers}: new bill(s) {', '.join(new_numbers) or 'none'}",
            highlight=False,
        )
        if errors:
            err_console.print(f"[red]not rebilled[/red] {errors}")
    elif result.bills_affected:
        console.print(
            f"[yellow]issued bills rated under the earlier load:[/yellow] {', '.join(result.bills_affected)}"
            " (rebill them with --rebill)"
        )


@app.command("terms")
def terms_cmd(
    number: str = typer.Argument(..., help="service agreement number"),
    as_json: bool = typer.Option(False, "--json", help="print the terms as JSON"),
) -> None:
    """The agreement's contract terms, oldest first."""
    from meter2cash.cis.contracts import agreement_by_number, terms_of

    with platform() as p, p.sessions() as s:
        sa = agreement_by_number(s, number)
        terms = terms_of(s, sa)
        current = (sa.sanctioned_load_kw, sa.contract_demand_kva)
    if as_json:
        console.print_json(json.dumps({"agreement": number, "terms": [t.to_dict() for t in terms]}))
        return
    if not terms:
        kva = "" if current[1] is None else f", contract demand {current[1].normalize():f} kVA"
        console.print(f"{number}: no load changes; sanctioned load {current[0].normalize():f} kW{kva}")
        return
    table = Table(title=f"Contract terms of {number}")
    for col, justify in (("From", "left"), ("Sanctioned kW", "right"), ("Contract kVA", "right"),
                         ("Reason", "left"), ("By", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in terms:
        kva = "" if t.contract_kva is None else f"{t.contract_kva.normalize():f}"
        table.add_row(str(t.effective_from), f"{t.sanctioned_kw.normalize():f}", kva, t.reason, t.created_by)
    console.print(table)
