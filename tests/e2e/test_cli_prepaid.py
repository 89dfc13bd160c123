"""``m2c prepaid time-out-commands`` on SQLite and PostgreSQL: a connection command without an
execution report ``command_timeout_h`` hours after its request is timed out when it was never
sent and in doubt when it was, a younger one waits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import attach_customer, make_meter
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cli import app
from meter2cash.cli.common import console
from meter2cash.config import get_settings
from meter2cash.mdm.commands.models import MeterCommand

NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def cli_db(platform, monkeypatch):
    """The CLI pointed at the test's fresh database (SQLite, then PostgreSQL)."""
    monkeypatch.setenv("M2C_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setattr(console, "width", 80)
    get_settings.cache_clear()
    yield platform
    get_settings.cache_clear()


def test_commands_older_than_the_timeout_are_timed_out(cli_db, session):
    assert PrepaidPolicy().command_timeout_h == 6  # the policy the command runs with
    ids = make_meter(session, "PP1")
    from meter2cash.mdm.models import Channel

    meter_id = session.get(Channel, ids["kwh_import_15m"]).meter_id
    attach_customer(session, meter_id, "PP1", "residential", payment_mode="prepaid")
    sa = session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == "SA-PP1")).one()
    session.add(Wallet(service_agreement_id=sa.id, account_id=sa.account_id, supply="connected"))
    hours = {"old_requested": 7, "old_sent": 6.5, "young": 5, "done": 30}
    cmds = {
        "old_requested": MeterCommand(service_agreement_id=sa.id, kind="disconnect", reason="manual",
                                           status="requested", requested_at=NOW - timedelta(hours=7)),
        "old_sent": MeterCommand(service_agreement_id=sa.id, kind="disconnect", reason="manual",
                                      status="sent", requested_at=NOW - timedelta(hours=6.5),
                                      sent_at=NOW - timedelta(hours=6)),
        "young": MeterCommand(service_agreement_id=sa.id, kind="disconnect", reason="manual",
                                   status="requested", requested_at=NOW - timedelta(hours=5)),
        "done": MeterCommand(service_agreement_id=sa.id, kind="disconnect", reason="manual",
                                  status="executed", requested_at=NOW - timedelta(hours=30),
                                  finished_at=NOW - timedelta(hours=29)),
    }  # fmt: skip
    session.add_all(cmds.values())
    session.commit()
    assert set(hours) == set(cmds)

    result = CliRunner().invoke(app, ["prepaid", "time-out-commands", "--at", NOW.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["timeout_hours"] == 6
    assert sorted(c["id"] for c in out["timed_out"]) == sorted(
        [cmds["old_requested"].id, cmds["old_sent"].id]
    )
    assert {c["id"]: c["status"] for c in out["timed_out"]} == {
        cmds["old_requested"].id: "timed_out",  # never sent
        cmds["old_sent"].id: "in_doubt",  # sent: the meter may have acted; its relay is read back
    }
    assert all(c["service_agreement"] == "SA-PP1" for c in out["timed_out"])

    session.expire_all()
    status = {k: session.get(MeterCommand, c.id).status for k, c in cmds.items()}
    assert status == {"old_requested": "timed_out", "old_sent": "in_doubt", "young": "requested",
                      "done": "executed"}  # fmt: skip
    # a timed-out disconnect leaves the supply as it was; one in doubt waits for the read-back
    assert (
        session.scalars(select(Wallet.supply).where(Wallet.service_agreement_id == sa.id)).one()
        == "connected"
    )

    again = CliRunner().invoke(app, ["prepaid", "time-out-commands", "--at", NOW.isoformat()])
    assert again.exit_code == 0 and "no command older than 6 h" in again.output
    later = CliRunner().invoke(
        app, ["prepaid", "time-out-commands", "--at", (NOW + timedelta(hours=2)).isoformat()]
    )
    assert later.exit_code == 0 and "SA-PP1" in later.output and f"{cmds['young'].id}" in later.output
    assert all(len(line) <= 80 for line in later.output.splitlines()) and "…" not in later.output
