"""``m2c demo``: the main job on a simulated utility, with a report in tables."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from meter2cash.bootstrap import bootstrap
from meter2cash.cli.common import console, err_console
from meter2cash.config import get_settings
from meter2cash.core.money import round_money
from meter2cash.demo import DEFAULT_MONTH, DemoConfig, DemoReport, run_demo
from meter2cash.demo_db import default_demo_url, demo_database_url, prepare_demo_database, shown


def demo(
    meters: int = typer.Option(1000, "--meters", min=1, help="number of consumers (one meter each)"),
    days: int = typer.Option(
        30, "--days", min=1, max=366, help="days of 15-minute data, ending at the month's end"
    ),
    month: str = typer.Option(DEFAULT_MONTH, "--month", help="last simulated month, YYYY-MM"),
    seed: int = typer.Option(42, "--seed", help="random seed (same seed, same utility)"),
    database: str | None = typer.Option(
        None,
        "--database",
        envvar="M2C_DEMO_DATABASE_URL",
        help="the demo's database (default: <var>/demo/meter2cash-demo.db; never M2C_DATABASE_URL). "
        "A PostgreSQL server URL without a database name uses meter2cash_demo on it",
    ),
    reset: bool = typer.Option(
        False, "--reset", help="empty the demo's database first (only a database the demo created)"
    ),
    json_out: Path | None = typer.Option(None, "--json-out", help="also write the report as JSON here"),
) -> None:
    """Simulate a utility and take it from meter reads to bills: ingest, VEE, bill run, ledger.

    The demo runs on a database of its own, which it creates and marks; it refuses any other.
    """
    settings = get_settings()
    url = demo_database_url(database or default_demo_url(settings.var_dir))
    prepared = prepare_demo_database(url, reset=reset)  # refuses any database but its own
    cfg = DemoConfig(meters=meters, days=days, month=month, seed=seed)
    console.rule(f"[bold]meter2cash demo[/bold]: {meters:,} consumers, {days} days of 15-minute data")
    console.print(f"demo database ({prepared.action}): {shown(url)}", highlight=False, soft_wrap=True)
    p = bootstrap(settings.model_copy(update={"database_url": url}))
    try:
        with Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            report = run_demo(p, cfg, progress)
    finally:
        p.dispose()
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    print_report(report)
    console.print(
        f"Look around with the other commands: M2C_DATABASE_URL={shown(url)} m2c ledger trial-balance",
        highlight=False,
        soft_wrap=True,
    )
    if report.problems:
        raise typer.Exit(1)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in r])
    return t


def _m(amount: str) -> str:
    """A ledger amount for display, rounded to the currency's minor unit."""
    return f"{round_money(Decimal(amount)):,}"


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def print_report(r: DemoReport) -> None:
    entities = r.masterdata.get("entities", {})
    console.print(
        _table(
            "Master data loaded",
            ["entity", "created", "updated", "rejected"],
            [[k.replace("_", " "), v["created"], v["updated"], v["rejected"]] for k, v in entities.items()],
        )
    )
    ing = r.ingest
    cols = [
        "delivery",
        "files",
        "already ingested",
        "rows",
        "accepted",
        "rejected",
        "new intervals",
        "duplicate intervals",
        "changed intervals",
        "register reads",
    ]
    rows = [
        [
            name,
            t["files"],
            t["duplicate_files"],
            t["rows_total"],
            t["rows_accepted"],
            t["rows_rejected"],
            t["intervals_new"],
            t["intervals_duplicate"],
            t["intervals_changed"],
            t["registers"],
        ]
        for name, t in (("on time", ing["on_time"]), ("late", ing["late"]))
    ]
    console.print(_table("Reads ingested", cols, rows))
    if ing.get("problems"):
        console.print("[bold]Rejected rows[/bold] (first of them):")
        for p in ing["problems"][:8]:
            console.print(f"  {p}")
    faults = r.faults
    console.print(
        _table(
            "Faults the simulated HES injected",
            ["fault", "count"],
            [[k.replace("_", " "), v] for k, v in faults.items()],
        )
    )
    vee_rows = []
    for name, run in (("first pass", r.vee["first_pass"]), ("after late files", r.vee["after_late_files"])):
        for rule, counts in sorted(run.get("findings_by_rule", {}).items()):
            vee_rows.append([name, rule, counts.get("findings", 0), counts.get("intervals", 0)])
    console.print(_table("VEE findings by rule", ["run", "rule", "findings", "intervals"], vee_rows))
    est = r.estimation
    console.print(
        _table(
            "Estimation",
            ["measure", "value"],
            [
                ["intervals stored", est["intervals"]],
                ["estimated in the first VEE pass", r.vee["first_pass"]["estimated_intervals"]],
                [
                    "estimates replaced by late actual reads",
                    r.vee["first_pass"]["estimated_intervals"] - est["estimated_intervals"],
                ],
                ["estimated intervals now", est["estimated_intervals"]],
                ["estimated share", f"{est['estimated_share']:.3%}"],
                ["still missing", est["still_missing"]],
                ["estimate MAE vs truth [kWh]", f"{est['estimate_mae_kwh']:.4f}"],
                ["mean true value of estimated intervals [kWh]", f"{est['estimate_mean_true_kwh']:.4f}"],
            ],
        )
    )
    if rr := r.vee.get("rereads"):
        console.print(
            f"re-reads requested/answered: {rr['requested']}/{rr['answered']}, completed {rr['completed']}"
        )
    bill_rows = []
    for run in r.billing["runs"]:
        for v in run.get("totals", []):
            bill_rows.append(
                [run["period"], f"{v['customer_class']} {v['kind']}", v["count"], v["kwh"], _m(v["amount"])]
            )
        kwh = sum((Decimal(v["kwh"]) for v in run.get("totals", [])), Decimal(0))
        bill_rows.append(
            [run["period"], "[bold]total[/bold]", run.get("bills", 0), kwh, _m(run["total_amount"])]
        )
    console.print(
        _table("Bills and revenue by class", ["period", "class / mode", "bills", "kWh", "amount"], bill_rows)
    )
    pp = r.prepaid
    if pp:
        console.print(
            _table(
                "Prepaid wallets (charged daily)",
                ["measure", "value"],
                [
                    ["wallets", pp["wallets"]],
                    ["days charged", pp["days"]],
                    ["energy charged [kWh]", pp["kwh"]],
                    ["charged", _m(pp["charged"])],
                    ["recharges", pp["recharges"]],
                    ["recharged", _m(pp["recharged"])],
                    ["balance alerts sent", pp["alerts"]],
                    ["disconnect requests", pp["disconnect_requests"]],
                    ["disconnects held back (18:00–08:00, Sundays, holidays)", pp["disconnects_deferred"]],
                    ["reconnect requests", pp["reconnect_requests"]],
                    ["commands carried out by", pp.get("head_end", "")],
                    [
                        "commands received / executed by the head-end",
                        " / ".join(
                            str(pp.get("head_end_commands", {}).get(k, "—")) for k in ("received", "executed")
                        ),
                    ],
                    ["reconnections confirmed (relay read back)", pp["reconnects"]["executed"]],
                    ["median minutes from recharge to supply", pp["reconnects"]["median_min"]],
                    ["reconnections within the 2-hour target", _share(pp["reconnects"]["within_target"])],
                    ["wallets below zero at the end", pp["negative_at_end"]],
                    ["wallet balances at the end", _m(pp["balance_at_end"])],
                ],
            )
        )
    pay = r.payments
    if pay:
        rows = [[f"{c['channel']} ({c['purpose']})", c["count"], _m(c["amount"])] for c in pay["by_channel"]]
        console.print(_table("Postpaid bills paid", ["channel", "receipts", "amount"], rows))
        aged = pay["ageing"]
        console.print(
            _table(
                f"Receivables on {pay['as_of']} ({pay['paid_in_full']} paid in full, "
                f"{pay['paid_in_part']} in part, {pay['unpaid']} unpaid)",
                ["bucket", "amount"],
                [[k, _m(v)] for k, v in aged.items()],
            )
        )
    e = r.energy
    console.print(
        _table(
            "Energy in = energy billed",
            ["measure", "kWh"],
            [
                ["validated energy in the billing window", e["stored_kwh"]],
                ["energy on issued bills", e["billed_kwh"]],
                ["difference", e["difference_kwh"]],
            ],
        )
    )
    tb = r.ledger
    console.print(
        _table(
            "Ledger trial balance",
            ["ledger account", "debit", "credit", "balance"],
            [
                [f"{a['code']} {a['name']}", _m(a["debit"]), _m(a["credit"]), _m(a["balance"])]
                for a in tb["rows"]
            ]
            + [["[bold]total[/bold]", _m(tb["total_debit"]), _m(tb["total_credit"]), _m(tb["total"])]],
        )
    )
    console.print(_table("Timings", ["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in r.timings.items()]))
    if r.bill_files:
        console.print(f"Bills written as HTML: {', '.join(r.bill_files[:3])} … ({len(r.bill_files)} files)")
    if r.problems:
        for p in r.problems:
            err_console.print(f"[red]check failed[/red] {p}")
    else:
        console.print(
            "[green]checks passed[/green]: energy in = energy billed; prepaid charged daily = monthly "
            "statements; trial balance zero"
        )
