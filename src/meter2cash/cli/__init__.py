"""The ``m2c`` command line. Each sub-module adds one group of commands."""

from __future__ import annotations

import typer

from meter2cash.cli import (
    agreements,
    billing,
    db,
    demo,
    hes,
    ingest,
    masterdata,
    money,  # also adds the ledger reports to billing.ledger_app
    outbox,
    serve,
    vee,
)

app = typer.Typer(
    name="m2c",
    help="meter2cash: meter data management and billing, from meter reads to cash.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(masterdata.app, name="masterdata")
app.add_typer(agreements.app, name="agreement")
app.add_typer(vee.app, name="vee")
app.add_typer(outbox.app, name="outbox")
app.add_typer(hes.hes_app, name="hes")
app.add_typer(hes.worker_app, name="worker")
app.add_typer(billing.tariff_app, name="tariff")
app.add_typer(billing.ledger_app, name="ledger")
app.add_typer(billing.bill_app, name="bill")
app.command("bill-run")(billing.bill_run)
app.command("rebill")(billing.rebill_cmd)
app.command("ingest")(ingest.ingest)
app.add_typer(ingest.limits_app, name="reading-limits")
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
money.register(app)


def main() -> None:
    app()
