"""A staged firmware rollout on SQLite and PostgreSQL: the pilot first, the next stage only when
the one before it settled well enough, a halt below the threshold, and the group's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conftest import make_meter
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.commands.firmware import advance_rollout, stage_sizes, start_rollout
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import apply_report
from meter2cash.mdm.models import Meter

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SHA = "0f" * 32


def test_stage_sizes_by_hand():
    assert stage_sizes(10, (0.1, 0.5, 1)) == [1, 4, 5]
    assert stage_sizes(1000, (0.01, 0.1, 1)) == [10, 90, 900]
    assert stage_sizes(3, (0.01, 0.1, 1)) == [1, 2]  # the 10 % stage adds nobody here
    for bad in ((), (0.5,), (0.5, 0.2, 1), (0, 1), (0.5, 1.5)):
        with pytest.raises(InvalidInput):
            stage_sizes(10, bad)


def _children(session, parent_id: int, stage: int) -> list[MeterCommand]:
    kids = session.scalars(
        select(MeterCommand).where(MeterCommand.parent_id == parent_id).order_by(MeterCommand.id)
    )
    return [c for c in kids if c.params["stage"] == stage]


def _settle(session, cmds, executed: int) -> None:
    for k, c in enumerate(cmds):
        apply_report(session, command_id=c.id, status="sent", at=T0)
        apply_report(session, command_id=c.id, status="executed" if k < executed else "failed",
                     at=T0 + timedelta(minutes=20))  # fmt: skip


def test_a_rollout_goes_stage_by_stage_and_halts_below_the_threshold(session):
    for i in range(10):
        make_meter(session, f"FW{i:02d}")
    ids = list(session.scalars(select(Meter.id).order_by(Meter.serial)))
    parent = start_rollout(session, meter_ids=ids, image="fw-2.1.bin", version="2.1", sha256=SHA,
                           stages=(0.1, 0.5, 1), min_success=0.8, requested_by="ops", at=T0)  # fmt: skip
    pilot = _children(session, parent.id, 1)
    assert [c.meter_id for c in pilot] == ids[:1] and parent.status == "pending"
    assert advance_rollout(session, parent.id, at=T0)["stage"] == 1  # the pilot has not settled
    _settle(session, pilot, executed=1)
    assert parent.status == "pending"  # more stages to come
    plan = advance_rollout(session, parent.id, at=T0 + timedelta(hours=1))
    assert plan["stage"] == 2
    second = _children(session, parent.id, 2)
    assert [c.meter_id for c in second] == ids[1:5]
    _settle(session, second, executed=3)  # 75 % < 80 %
    plan = advance_rollout(session, parent.id, at=T0 + timedelta(hours=2))
    assert plan["halted"] == "stage 2: 75.0% succeeded, below 80%"
    assert _children(session, parent.id, 3) == []
    assert parent.status == "partial"
    assert parent.result["by_status"] == {"executed": 4, "failed": 1}
