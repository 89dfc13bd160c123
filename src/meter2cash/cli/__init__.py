"""The ``m2c`` command line. Each sub-module adds one group of commands.

Every command runs inside one error boundary (:class:`meter2cash.cli.errors.ErrorBoundary`):
an error is one line on stderr with its stable code, and the exit code says what happened —
0 done, 1 done in part (some input rejected and listed), 2 nothing done.
"""

from __future__ import annotations

import typer

from meter2cash.cli import (
    agreements,
    audit,
    billing,
    commands,
    db,
    demo,
    events,
    hes,
    hes_sim,
    ingest,
    ledger,
    masterdata,
    money,
    orders,
    outbox,
    prepaid,
    scheduler,
    serve,
    tariffs,
    usage,
    vee,
)
from meter2cash.cli.errors import ErrorBoundary

app = typer.Typer(
    name="m2c",
    help="meter2cash: meter data management and billing, from meter reads to cash.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ErrorBoundary,
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", envvar="M2C_DEBUG", help="show the traceback of an unexpected error"
    ),
) -> None:
    """meter2cash: meter data management and billing, from meter reads to cash.

    Exit codes: 0 done; 1 done in part (some input was rejected, each piece listed); 2 nothing
    done (bad usage or input, database unreachable, unexpected error: one line with its code).
    """


app.add_typer(db.app, name="db")
app.add_typer(masterdata.app, name="masterdata")
app.add_typer(agreements.app, name="agreement")
app.add_typer(vee.app, name="vee")
app.add_typer(outbox.app, name="outbox")
app.add_typer(hes.hes_app, name="hes")
app.add_typer(hes.worker_app, name="worker")
app.add_typer(hes_sim.app, name="hes-sim")
app.add_typer(tariffs.app, name="tariff")
app.add_typer(ledger.app, name="ledger")
app.add_typer(billing.bill_app, name="bill")
app.add_typer(prepaid.prepaid_app, name="prepaid")
app.add_typer(commands.app, name="commands")
app.add_typer(orders.app, name="orders")
app.add_typer(scheduler.app, name="scheduler")
app.add_typer(prepaid.wallet_app, name="wallet")
app.add_typer(money.collections_app, name="collections")
app.add_typer(money.notify_app, name="notify")
app.command("bill-run")(billing.bill_run)
app.command("rebill")(billing.rebill_cmd)
app.command("pay")(money.pay)
app.command("gateway-sandbox")(money.gateway_sandbox)
app.command("ingest")(ingest.ingest)
app.add_typer(ingest.limits_app, name="reading-limits")
app.add_typer(usage.app, name="usage")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(audit.reads_app, name="reads")
app.add_typer(audit.network_app, name="network")
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
events.register(app)


def main() -> None:
    app()
