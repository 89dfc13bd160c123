"""The field loop end to end on loopback: ``m2c hes-sim`` as a separate process pushes a fleet's
block-load, daily and billing profiles and its events over MQTT (on SQLite) and over NATS
JetStream (on PostgreSQL) to the MDM's serve loop, loses some pushes on the way, and answers the
commands the MDM sends. At the end: every complete day is complete after re-acquisition (read
success 100 %), every command is in a final state, every event is routed, and the prepaid loop
has cut a customer off and put them back through real commands, each confirmed by the relay
read back from the simulated meter.

The fleet is small here (``M2C_FIELD_METERS``, default 40, and ``M2C_FIELD_DAYS``, default 2, so
that ``make test`` stays short); the same test runs a larger fleet for longer when those are set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from conftest import IN_CI, NATS_URL, _clean, _nats_reachable, store_example_tariffs
from meter2cash.bootstrap import Platform, bootstrap
from meter2cash.config import Settings

MQTT_URL = os.environ.get("M2C_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
METERS = int(os.environ.get("M2C_FIELD_METERS", "40"))
DAYS = int(os.environ.get("M2C_FIELD_DAYS", "2"))
TZ = "Asia/Kolkata"
FIRST = date(2026, 10, 1)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def m2c(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meter2cash.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(
    params=[
        pytest.param(("mqtt", "sqlite"), id="mqtt-sqlite"),
        pytest.param(("nats", "postgresql"), marks=pytest.mark.postgres, id="nats-postgresql"),
    ]
)
def field(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Platform]]:
    """(transport, its URL, a platform on an empty database of the paired kind)."""
    transport, backend = request.param
    if transport == "nats" and not _nats_reachable(NATS_URL):
        if IN_CI:
            pytest.fail(f"NATS is required under CI=true but unreachable at {NATS_URL}")
        pytest.skip(f"NATS not reachable at {NATS_URL}")
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "sqlite_url")
    p = bootstrap(Settings(database_url=url, var_dir=tmp_path / "var", timezone=TZ, currency="INR"))
    _clean(p.engine)
    try:
        yield transport, MQTT_URL if transport == "mqtt" else NATS_URL, p
    finally:
        _clean(p.engine)
        p.dispose()


def _load_fleet(platform: Platform, out: Path) -> dict[str, Any]:
    from meter2cash.integration.masterdata import load_bundle_path
    from meter2cash.mdm.network import assign_boundary_meter

    init = m2c(
        "hes-sim", "init", "--meters", str(METERS), "--dcus", str(max(2, METERS // 50)), "--start",
        FIRST.isoformat(), "--days", str(DAYS), "--interval", "15", "--seed", "11", "--tz", TZ,
        "--out", str(out), "--json",
    )  # fmt: skip
    _, err = init.communicate(timeout=300)
    assert init.returncode == 0, err
    bundle = json.loads((out / "masterdata.json").read_text())
    with platform.sessions() as s:
        store_example_tariffs(s)
        result = load_bundle_path(s, out / "masterdata.json")
        assert result.rejected == 0, result.problems
        for b in bundle["$boundary_meters"]:
            assign_boundary_meter(s, serial=b["serial"], dt=b.get("transformer"), feeder=b.get("feeder"),
                                  at=datetime.fromisoformat(b["from"]))  # fmt: skip
        s.commit()
    return bundle


class ServeLoop:
    """The MDM's serve loop in a thread: dispatch, routing and re-acquisition on short periods."""

    def __init__(self, platform: Platform, transport: str, url: str, hes: str, prefix: str) -> None:
        from meter2cash.integration.hes_serve import serve

        self.stop, self.errors = threading.Event(), []  # type: ignore[var-annotated]

        def run() -> None:
            try:
                serve(platform, transport, hes=hes, prefix=prefix, url=url, stop=self.stop, poll_s=0.2,
                      dispatch_every=0.3, route_every=1.0, acquire_every=max(2.0, METERS * DAYS / 1000),
                      acquire_days=31)  # fmt: skip
            except BaseException as exc:
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.errors, self.errors


def _wait(
    what: str, check: Any, timeout: float, sim: subprocess.Popen[str], why: Any = None, every: float = 0.5
) -> Any:
    """Wait for ``check`` to hold; the MDM may still be working through what the simulator sent
    after it stopped, so only a simulator that failed ends the wait early."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        failed = sim.poll() not in (None, 0)
        if failed or time.monotonic() > deadline:
            state = why() if why else ""
            if sim.poll() is None:
                sim.terminate()  # it prints what it did so far
            out, err = sim.communicate(timeout=60)
            raise AssertionError(f"while waiting for {what}: {state}; simulator: {out[-3000:]} {err[-1500:]}")
        time.sleep(every)


def test_a_fleet_over_the_broker_ends_complete_routed_and_settled(field, tmp_path: Path) -> None:
    from meter2cash.cis.parties.models import ServiceAgreement
    from meter2cash.cis.prepaid.daily_charge import run_daily
    from meter2cash.cis.prepaid.models import Wallet
    from meter2cash.cis.prepaid.policy import PrepaidPolicy
    from meter2cash.cis.prepaid.wallet import evaluate_wallets, recharge_account, wallet_balances
    from meter2cash.events.models import OutboxMessage
    from meter2cash.mdm.acquisition import find_gaps, read_success
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.states import FINAL
    from meter2cash.mdm.events.models import EventRoutingState
    from meter2cash.mdm.hes_inbox import HesMessage
    from meter2cash.mdm.models import MeterEvent
    from meter2cash.mdm.usage.local import LocalUsage

    transport, url, platform = field
    hes, prefix = f"sim{uuid.uuid4().hex[:6]}", f"f{uuid.uuid4().hex[:6]}"
    bundle = _load_fleet(platform, tmp_path)
    zone = ZoneInfo(TZ)
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=zone).astimezone(UTC)
    complete_until = start + timedelta(days=DAYS - 1)  # the last day is checked the day after
    loop = ServeLoop(platform, transport, url, hes, prefix)
    time.sleep(1.0)  # the MDM's end subscribed before the head-end pushes
    sim = m2c(
        "hes-sim", "run", "--fleet", str(tmp_path / "fleet.json"), "--transport", transport, "--url", url,
        "--hes", hes, "--prefix", prefix, "--speed", "0", "--miss", "0.03", "--fail", "0", "--no-answer", "0",
        "--lost", "0", "--idle", "120", "--json",
    )  # fmt: skip
    try:
        with platform.sessions() as s:

            def pushed() -> bool:  # the pushes are over when nothing new arrives for a few seconds
                n = s.scalar(select(func.count()).select_from(HesMessage))
                s.rollback()
                settled = getattr(pushed, "last", None) == n and time.monotonic() - pushed.since > 4  # type: ignore[attr-defined]
                if getattr(pushed, "last", None) != n:
                    pushed.last, pushed.since = n, time.monotonic()  # type: ignore[attr-defined]
                return settled

            _wait("the pushes", pushed, 60 * DAYS + 120, sim)

            def complete() -> bool:
                gaps = find_gaps(s, start, complete_until)
                pending = s.scalar(
                    select(func.count())
                    .select_from(MeterCommand)
                    .where(MeterCommand.is_group.is_(False), MeterCommand.status.not_in(sorted(FINAL)))
                )
                s.rollback()
                return not gaps and pending == 0

            def left() -> str:
                gaps = find_gaps(s, start, complete_until)
                statuses = s.execute(
                    select(MeterCommand.kind, MeterCommand.status, func.count()).group_by(
                        MeterCommand.kind, MeterCommand.status
                    )
                ).all()
                s.rollback()
                return f"{len(gaps)} gaps, e.g. {[g.to_dict() for g in gaps[:3]]}; commands {statuses}"

            # the MDM works through what is left at its own pace: a larger fleet may take longer
            _wait("complete data after re-acquisition", complete, 120 + METERS * DAYS * 0.15, sim, left,
                  every=max(0.5, METERS * DAYS / 5000))  # fmt: skip
            reacquired = s.scalar(select(func.count()).where(MeterCommand.kind == "reacquire"))
            assert reacquired, "three pushes in a hundred were lost: some intervals were asked for again"
            for k in range(DAYS - 1):
                success = read_success(s, FIRST + timedelta(days=k), tz=TZ)
                assert success.total.expected == success.total.complete == len(bundle["meters"])

            # the prepaid loop: charged days run the balance out, a disconnect goes to the meter ...
            prepaid = s.scalars(
                select(ServiceAgreement).where(ServiceAgreement.payment_mode == "prepaid")
            ).all()
            assert prepaid, "the simulated fleet has prepaid customers"
            # the commands run on the MDM's clock: a policy that allows disconnection at any hour
            policy = PrepaidPolicy(
                grace_hours=0, quiet_from=0, quiet_until=0, sundays=False, holiday_country=""
            )
            for k in range(DAYS - 1):
                run_daily(s, FIRST + timedelta(days=k), tz=TZ, currency="INR", policy=policy, evaluate=False,
                          usage=LocalUsage)  # fmt: skip
            morning = datetime.now(UTC)
            cut = evaluate_wallets(s, morning, tz=TZ, policy=policy)
            s.commit()
            assert cut.disconnects == len(prepaid)

            def supply(state: str) -> bool:
                states = s.scalars(select(Wallet.supply)).all()
                s.rollback()
                return bool(states) and set(states) == {state}

            def supplies() -> str:
                states = s.execute(select(Wallet.supply, func.count()).group_by(Wallet.supply)).all()
                cmds = s.execute(
                    select(MeterCommand.kind, MeterCommand.status, func.count())
                    .where(MeterCommand.kind.in_(("connect", "disconnect", "read")))
                    .group_by(MeterCommand.kind, MeterCommand.status)
                ).all()
                s.rollback()
                return f"wallets {states}; commands {cmds}"

            # the MDM's loop also searches every day for gaps now and then: a larger fleet takes longer
            wait = 60 + METERS * 0.1
            _wait("every prepaid meter disconnected", lambda: supply("disconnected"), wait, sim, supplies)
            # ... and a recharge that clears the debt puts the customer back, confirmed by the relay
            # read back (a month of charges may run the balance below -500)
            owed = wallet_balances(s, [sa.account_id for sa in prepaid])
            for sa in prepaid:
                amount = Decimal("500.00") + max(Decimal(0), -Decimal(owed.get(sa.account_id, 0)).scaleb(-4))
                recharge_account(s, sa.account_id, amount.quantize(Decimal("0.01")), channel="online",
                                 currency="INR", tz=TZ, policy=policy, at=datetime.now(UTC))  # fmt: skip
            s.commit()
            _wait("every prepaid meter reconnected", lambda: supply("connected"), wait, sim, supplies)
            relay = s.execute(
                select(MeterCommand.kind, MeterCommand.status, MeterCommand.relay_state).where(
                    MeterCommand.kind.in_(("connect", "disconnect"))
                )
            ).all()
            assert sorted(set(relay)) == [
                ("connect", "executed", "connected"),
                ("disconnect", "executed", "disconnected"),
            ]

            # every event routed, outages and tamper reported on the outbox
            _wait("every event routed", lambda: _routed(s, EventRoutingState, MeterEvent), 30, sim)
            events = s.scalar(select(func.count()).select_from(MeterEvent))
            assert events, "the simulated meters raised events"
            topics = set(s.scalars(select(OutboxMessage.topic)))
            s.rollback()
        if sim.poll() is None:
            sim.terminate()  # the simulator stops on SIGTERM and still prints what it did
        out, err = sim.communicate(timeout=60)
        assert sim.returncode in (0, -15), err
        stats = json.loads(out)
        assert stats["missed_pushes"] > 0
        assert stats["commands"]["received"] == stats["commands"]["executed"]
        assert "FAILED" not in stats["replies"]
        assert topics & {"oms.outage.started", "cis.tamper", "workforce.work_order.created"}, topics
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate(timeout=30)
        loop.close()


def _routed(session: Any, state_model: Any, event_model: Any) -> bool:
    last = session.scalar(select(func.max(event_model.id)))
    cursor = session.scalar(select(func.max(state_model.last_event_id)))
    session.rollback()
    return last is not None and cursor == last
