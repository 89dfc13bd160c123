"""``m2c hes-sim run`` as a separate process over the real MQTT broker: a day of a 20-meter fleet
arrives block by block and a command sent to it is answered; and, with the MDM's serve loop on the
other end, the intervals lost on the way are found, re-acquired and merged, and a disconnect is
confirmed by the meter."""

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
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import IN_CI, store_example_tariffs
from meter2cash.bootstrap import Platform
from meter2cash.hes import protocol as p
from meter2cash.hes.links import LinkUnavailable, MqttLink

MQTT_URL = os.environ.get("M2C_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
#: 20 consumer meters behind 2 DCUs (two DT meters) on one feeder (one feeder meter), 96 blocks.
EXPECTED_BLOCK_ROWS = (20 + 2 + 1) * 96


def m2c(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meter2cash.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def init_fleet(out: Path, meters: int, dcus: int) -> dict[str, Any]:
    init = m2c(
        "hes-sim", "init", "--meters", str(meters), "--dcus", str(dcus), "--start", "2026-10-01",
        "--days", "1", "--interval", "15", "--seed", "5", "--tz", "Asia/Kolkata", "--out", str(out), "--json",
    )  # fmt: skip
    printed, err = init.communicate(timeout=120)
    assert init.returncode == 0, err
    return json.loads(printed)  # type: ignore[no-any-return]


def _forget_sessions(hes: str, prefix: str) -> None:
    """Drop the broker's persistent sessions of both ends of this test's link."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    for role in ("hes", "mdm"):
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"m2c-{role}-{prefix}-{hes}", clean_session=True
        )
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def wire() -> Iterator[tuple[str, str]]:
    """A head-end name and topic prefix of this test's own, their broker sessions dropped after."""
    hes, prefix = f"sim{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    try:
        MqttLink(MQTT_URL, role="mdm", hes=hes, prefix=prefix, connect_timeout_s=5).close()
    except LinkUnavailable:
        if IN_CI:
            raise
        pytest.skip("no MQTT broker at " + MQTT_URL)
    yield hes, prefix
    _forget_sessions(hes, prefix)


@pytest.fixture
def mdm_link(wire: tuple[str, str]) -> Iterator[MqttLink]:
    """The MDM's end of the test's link."""
    link = MqttLink(MQTT_URL, role="mdm", hes=wire[0], prefix=wire[1], connect_timeout_s=5)
    yield link
    link.close()


def test_simulator_process_pushes_a_day_and_answers_a_command(tmp_path: Path, mdm_link: MqttLink) -> None:
    assert init_fleet(tmp_path, 20, 2)["counts"]["meters"] == 23
    sim = m2c(
        "hes-sim", "run", "--fleet", str(tmp_path / "fleet.json"), "--transport", "mqtt", "--url", MQTT_URL,
        "--hes", mdm_link.hes, "--prefix", mdm_link.prefix, "--speed", "0", "--miss", "0", "--fail", "0",
        "--no-answer", "0", "--lost", "0", "--idle", "4", "--json",
    )  # fmt: skip
    messages: list[Any] = []
    command = p.CommandMessage(
        message_id=p.command_message_id(41, 1),
        sent_at=datetime.now(UTC),
        command_id=41,
        meter="SM0000003",
        action="disconnect",
    )
    sent_command = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            for item in mdm_link.fetch(timeout=0.5, limit=500):
                messages.append(p.parse_message(item.payload))
                item.ack()
                if not sent_command:  # the simulator is connected and subscribed: command it
                    mdm_link.send("command", p.dump(command))
                    sent_command = True
            if sim.poll() is not None:
                for item in mdm_link.fetch(timeout=0.5, limit=5000):
                    messages.append(p.parse_message(item.payload))
                    item.ack()
                break
        out, err = sim.communicate(timeout=30)
    finally:
        if sim.poll() is None:
            sim.kill()
        sim.communicate(timeout=30)  # reaped, its pipes closed
    assert sim.returncode == 0, err
    stats = json.loads(out)
    block_rows = sum(
        len(m.rows)
        for msg in messages
        if msg.kind == "profile" and msg.profile == p.BLOCK_LOAD and not msg.correlation_id
        for m in msg.meters
    )
    assert block_rows == EXPECTED_BLOCK_ROWS == stats["block_rows"]
    meters = {m.meter for msg in messages if msg.kind == "profile" for m in msg.meters}
    assert {"SM0000001", "SM0000020", "DTM-DT-0001", "DTM-DT-0002", "FDM-FDR-01"} <= meters
    reports = [m for m in messages if m.kind == "command_report" and m.command_id == 41]
    assert [r.status for r in reports] == ["queued", "acknowledged", "executed"]
    assert reports[-1].result == {"relay": "disconnected"}
    assert reports[-1].correlation_id == command.message_id
    assert stats["commands"] == {"received": 1, "executed": 1}
    assert any(m.kind == "network" for m in messages)


@pytest.mark.slow
def test_lost_intervals_are_reacquired_and_a_disconnect_confirmed_through_the_mdm(
    tmp_path: Path, platform: Platform, wire: tuple[str, str]
) -> None:
    from meter2cash.integration.hes_serve import serve
    from meter2cash.integration.masterdata import load_bundle_path
    from meter2cash.mdm.acquisition import find_gaps, read_success, request_reacquisition
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command
    from meter2cash.mdm.hes_inbox import HesMessage
    from meter2cash.mdm.models import Meter
    from meter2cash.mdm.network import assign_boundary_meter

    hes, prefix = wire
    init_fleet(tmp_path, 4, 2)
    bundle = json.loads((tmp_path / "masterdata.json").read_text())
    with platform.sessions() as s:
        store_example_tariffs(s)
        result = load_bundle_path(s, tmp_path / "masterdata.json")
        assert result.rejected == 0, result.problems
        for b in bundle["$boundary_meters"]:
            assign_boundary_meter(
                s, serial=b["serial"], dt=b.get("transformer"), feeder=b.get("feeder"),
                at=datetime.fromisoformat(b["from"]),
            )  # fmt: skip
        s.commit()
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            serve(
                platform,
                "mqtt",
                hes=hes,
                prefix=prefix,
                url=MQTT_URL,
                stop=stop,
                poll_s=0.2,
                dispatch_every=0.2,
            )
        except BaseException as exc:
            errors.append(exc)

    MqttLink(MQTT_URL, role="mdm", hes=hes, prefix=prefix).close()  # the MDM's session exists first
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    sim = m2c(
        "hes-sim", "run", "--fleet", str(tmp_path / "fleet.json"), "--transport", "mqtt", "--url", MQTT_URL,
        "--hes", hes, "--prefix", prefix, "--speed", "0", "--miss", "0.2", "--fail", "0", "--no-answer", "0",
        "--lost", "0", "--dcu-outages", "0", "--no-report-queued", "--idle", "120", "--json",
    )  # fmt: skip
    start = datetime(2026, 10, 1, tzinfo=UTC) - timedelta(hours=5, minutes=30)
    end = start + timedelta(days=1)

    midnight = int(end.timestamp())

    def day_pushed() -> bool:  # the pushes at the end of the day (bl-<dcu>-<epoch>, dp-<dcu>-<epoch>) are in
        with platform.sessions() as s:
            last = s.scalar(select(func.count()).where(HesMessage.message_id.like(f"%-{midnight}")))
            return bool(last)

    try:
        deadline = time.monotonic() + 90
        while not day_pushed():
            assert time.monotonic() < deadline and sim.poll() is None, sim.stderr.read() if sim.stderr else ""
            time.sleep(0.2)
        time.sleep(1.0)
        with platform.sessions() as s:
            gaps = find_gaps(s, start, end)
            assert gaps, "a fifth of the pushes were lost: the store has gaps"
            request_reacquisition(s, gaps, at=datetime.now(UTC))
            meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM0000002"))
            assert meter_id is not None
            disconnect = issue_command(
                s, kind="disconnect", meter_id=meter_id, reason="test", requested_by="test"
            )
            s.commit()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with platform.sessions() as s:
                left = find_gaps(s, start, end)
                status = s.get(MeterCommand, disconnect.id).status  # type: ignore[union-attr]
                if not left and status == "executed":
                    break
            time.sleep(0.5)
        if left:
            with platform.sessions() as s:
                statuses = s.execute(
                    select(MeterCommand.status, func.count()).group_by(MeterCommand.status)
                ).all()
            sim.kill()
            printed, err = sim.communicate(timeout=30)
        assert not left, (
            f"{len(left)} gap(s) left; commands {statuses}; simulator {printed[-2000:]} {err[-2000:]}"
        )
        assert status == "executed"
        with platform.sessions() as s:
            command = s.get(MeterCommand, disconnect.id)
            assert command is not None and command.result == {"relay": "disconnected"}
            success = read_success(s, date(2026, 10, 1), tz="Asia/Kolkata")
            assert (success.total.expected, success.total.complete) == (4 + 2 + 1, 4 + 2 + 1)
        sim.terminate()  # it would answer for two more minutes: stopped, it says what it did
        printed, err = sim.communicate(timeout=60)
        assert sim.returncode == 0, err
        stats = json.loads(printed)
        assert stats["stopped"] is True
        assert stats["missed_pushes"] > 0
        with platform.sessions() as s:
            statuses = dict(
                s.execute(select(MeterCommand.status, func.count()).group_by(MeterCommand.status)).all()
            )
        assert set(statuses) == {"executed"}  # every re-acquisition and the disconnect
        assert stats["commands"]["executed"] == stats["commands"]["received"] == statuses["executed"] > 1
        assert "FAILED" not in stats["replies"]
    finally:
        if sim.poll() is None:
            sim.kill()
        sim.communicate(timeout=30)  # reaped, its pipes closed
        stop.set()
        thread.join(20)
    assert not errors, errors


def test_boundary_command_records_the_dt_and_feeder_meters(tmp_path: Path, one_meter_db: str) -> None:
    from typer.testing import CliRunner

    from meter2cash.cli import app
    from meter2cash.mdm.network_models import BoundaryMeter

    runner = CliRunner()
    init_fleet(tmp_path, 4, 1)
    tariffs = sorted(
        str(t) for t in (Path(__file__).resolve().parents[2] / "examples" / "tariffs").glob("*.toml")
    )
    assert runner.invoke(app, ["tariff", "load", *tariffs]).exit_code == 0
    loaded = runner.invoke(app, ["masterdata", "load", str(tmp_path / "masterdata.json")])
    assert loaded.exit_code == 0, loaded.output
    done = runner.invoke(app, ["hes-sim", "boundary", str(tmp_path / "masterdata.json")])
    assert done.exit_code == 0, done.output
    assert "2 boundary meter(s) recorded" in done.output
    again = runner.invoke(app, ["hes-sim", "boundary", str(tmp_path / "masterdata.json")])
    assert again.exit_code == 0
    from meter2cash.bootstrap import bootstrap
    from meter2cash.config import Settings

    p = bootstrap(Settings(database_url=one_meter_db))
    try:
        with p.sessions() as s:
            rows = s.execute(select(BoundaryMeter.kind, BoundaryMeter.valid_to)).all()
    finally:
        p.dispose()
    assert sorted(rows) == [("dt", None), ("feeder", None)]  # recorded once, still current
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"$boundary_meters": [{"serial": "DTM-DT-0001"}]}))
    refused = runner.invoke(app, ["hes-sim", "boundary", str(broken)])
    assert refused.exit_code == 2 and "hes_sim.bad_bundle" in refused.output
    broken.write_text(
        json.dumps(
            {"$boundary_meters": [{"serial": "NOPE", "feeder": "FDR-01", "from": "2026-01-01T00:00:00Z"}]}
        )
    )
    unknown = runner.invoke(app, ["hes-sim", "boundary", str(broken)])
    assert unknown.exit_code == 2 and "network.unknown_meter" in unknown.output
