"""``m2c hes-sim run`` as a separate process over the real MQTT broker: a day of a 20-meter fleet
arrives block by block, and a command sent to it is answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture
def mdm_link() -> Any:
    """The MDM's end of a fresh head-end link (its own prefix and name)."""
    hes = f"sim{uuid.uuid4().hex[:8]}"
    try:
        link = MqttLink(MQTT_URL, role="mdm", hes=hes, prefix="m2ctest", connect_timeout_s=5)
    except LinkUnavailable:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("no MQTT broker at " + MQTT_URL)
    yield link
    link.close()


def test_simulator_process_pushes_a_day_and_answers_a_command(tmp_path: Path, mdm_link: MqttLink) -> None:
    init = m2c(
        "hes-sim", "init", "--meters", "20", "--dcus", "2", "--start", "2026-10-01", "--days", "1",
        "--interval", "15", "--seed", "5", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    out, err = init.communicate(timeout=120)
    assert init.returncode == 0, err
    assert json.loads(out)["counts"]["meters"] == 23
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
