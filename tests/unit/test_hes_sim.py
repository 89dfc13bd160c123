"""The fleet simulator: a seeded fleet, boundary meters with their losses, pushes lost and
re-acquired, commands, outages and load violations — driven through an in-memory link."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from meter2cash.hes import protocol as p
from meter2cash.hes.fleet import FleetSpec, boundary_energy, build_sim_fleet, consumer_day_kwh
from meter2cash.hes.sim import LOAD_VIOLATION_ID, SimConfig, SimEngine
from meter2cash.hes.sim_masterdata import fleet_bundle
from meter2cash.hes.sim_run import take

T0 = datetime(2026, 10, 1, tzinfo=UTC) - timedelta(hours=5, minutes=30)  # local midnight, Asia/Kolkata
QUIET = {"miss": 0.0, "dcu_outage": 0.0, "outage_rate": 0.0, "event_rate": 0.0, "move_rate": 0.0}
SURE = {"fail": 0.0, "no_answer": 0.0, "lost_answer": 0.0}


class MemoryLink:
    """What the engine sends, parsed back as every receiver would."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, bytes]] = []

    def send(self, kind: str, payload: bytes) -> None:
        self.raw.append((kind, payload))

    def messages(self, kind: str | None = None) -> list[Any]:
        out = [p.parse_message(b) for _, b in self.raw]
        return [m for m in out if kind is None or m.kind == kind]

    def reports(self, command_id: int) -> list[p.CommandReport]:
        return [m for m in self.messages("command_report") if m.command_id == command_id]


def engine(meters: int = 20, dcus: int = 2, **cfg: Any) -> tuple[SimEngine, MemoryLink]:
    link = MemoryLink()
    settings = {**QUIET, **SURE, **cfg}
    e = SimEngine(build_sim_fleet(FleetSpec(meters=meters, dcus=dcus)), SimConfig(**settings), link.send)
    e.start()
    return e, link


def command(e: SimEngine, cid: int, meter: str, action: str, **params: Any) -> p.CommandMessage:
    msg = p.CommandMessage(
        message_id=p.command_message_id(cid, 1),
        sent_at=datetime.fromtimestamp(e.now, UTC),
        command_id=cid,
        meter=meter,
        action=action,
        params=params,
    )
    take(e, p.dump(msg))
    return msg


def settle(e: SimEngine) -> None:
    """Run every answer still due."""
    while (due := e.next_due()) is not None:
        e.advance_to(due)


def final(link: MemoryLink, cid: int) -> p.CommandReport:
    return link.reports(cid)[-1]


# --- the fleet ------------------------------------------------------------------------------------


def test_same_seed_same_fleet_and_load() -> None:
    a, b = build_sim_fleet(FleetSpec(meters=30, dcus=3)), build_sim_fleet(FleetSpec(meters=30, dcus=3))
    assert a.serial == b.serial
    for name in ("dt_of", "dcu_of", "sanctioned_kw", "pf", "dt_loss", "dt_theft", "drift_rate", "kwh_reg"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(consumer_day_kwh(a, 3), consumer_day_kwh(b, 3))
    other = build_sim_fleet(FleetSpec(meters=30, dcus=3, seed=43))
    assert not np.array_equal(consumer_day_kwh(a, 3), consumer_day_kwh(other, 3))


def test_fleet_layout() -> None:
    f = build_sim_fleet(FleetSpec(meters=20, dcus=2))
    # 20 consumers, then the two DT meters and the feeder meter
    assert f.serial[18:] == ["SM0000019", "SM0000020", "DTM-DT-0001", "DTM-DT-0002", "FDM-FDR-01"]
    assert f.dt_of.tolist() == [0] * 10 + [1] * 10 + [0, 1, -1]
    assert [f.dcu_code(i) for i in (0, 10, 20, 21, 22)] == [
        "DCU-0001",
        "DCU-0002",
        "DCU-0001",
        "DCU-0002",
        "",
    ]


def test_boundary_meter_energy_is_its_consumers_plus_loss() -> None:
    consumers = np.array([1.0, 2.0, 0.5, 4.0])
    dt, feeder = boundary_energy(
        consumers, np.array([0, 0, 1, 1]), np.array([0.10, 0.05]), np.array([0, 0]), np.array([0.04])
    )
    # DT 1: (1 + 2) × 1.10 = 3.3; DT 2: (0.5 + 4) × 1.05 = 4.725; feeder: (3.3 + 4.725) × 1.04 = 8.346
    assert dt.tolist() == [3.3, 4.725]
    assert feeder.tolist() == [8.346]


def test_simulated_dt_meter_measures_its_consumers_plus_loss() -> None:
    e, _ = engine()
    e.fleet.dt_loss[:] = [0.10, 0.03]
    e.fleet.dt_theft[:] = [0.0, 0.12]
    e.fleet.feeder_loss[:] = [0.02]
    for _ in range(8):
        e.step()
    _, blocks = e.memory.window(0, 8)
    kwh = np.round(blocks[:, :, 0], 3)  # as pushed: to the Wh
    for k in range(8):
        dt1, dt2 = kwh[:10, k].sum(), kwh[10:20, k].sum()
        assert kwh[20, k] == pytest.approx(dt1 * 1.10, abs=0.00051)
        assert kwh[21, k] == pytest.approx(dt2 * 1.15, abs=0.00051)
        assert kwh[22, k] == pytest.approx((kwh[20, k] + kwh[21, k]) * 1.02, abs=0.00051)


# --- pushes -------------------------------------------------------------------------------------


def test_block_load_push_clock_is_the_end_of_the_block() -> None:
    e, link = engine()
    for _ in range(4):  # the first hour: one push per DCU and one for the feeder meter
        e.step()
    pushes = [m for m in link.messages("profile") if m.profile == p.BLOCK_LOAD]
    assert len(pushes) == 3
    assert pushes[0].columns == [
        p.CLOCK,
        "1.0.1.29.0.255",
        "1.0.9.29.0.255",
        "1.0.12.27.0.255",
        "1.0.11.27.0.255",
    ]
    assert pushes[0].capture_period_s == 900
    rows = pushes[0].meters[0].rows
    assert [r[0] for r in rows] == [
        "2026-10-01T00:15:00+05:30",
        "2026-10-01T00:30:00+05:30",
        "2026-10-01T00:45:00+05:30",
        "2026-10-01T01:00:00+05:30",
    ]
    assert sum(len(m.rows) for push in pushes for m in push.meters) == 23 * 4


def test_a_day_pushes_every_block_of_every_meter_and_the_daily_profile() -> None:
    e, link = engine()
    for _ in range(96):
        e.step()
    assert e.stats.block_rows == 23 * 96
    daily = [m for m in link.messages("profile") if m.profile == p.DAILY]
    clocks = {r[0] for m in daily for meter in m.meters for r in meter.rows}
    assert clocks == {"2026-10-01T00:00:00+05:30", "2026-10-02T00:00:00+05:30"}
    network = link.messages("network")[0]
    links = {(c.link, c.child): c.parent for c in network.changes}
    assert links[("meter_dcu", "SM0000011")] == "DCU-0002"
    assert links[("service_point_dt", "SP0000011")] == "DT-0002"
    assert links[("dt_feeder", "DT-0002")] == "FDR-01"


def test_a_missed_push_is_returned_by_reacquire_with_the_same_values() -> None:
    delivered, lossy = engine(), engine(miss=1.0)
    for _ in range(8):
        delivered[0].step()
        lossy[0].step()
    assert lossy[0].stats.missed_pushes == lossy[0].stats.pushes > 0
    assert not [m for m in lossy[1].messages("profile") if m.profile == p.BLOCK_LOAD]
    pushed = [
        m.rows
        for msg in delivered[1].messages("profile")
        if msg.profile == p.BLOCK_LOAD
        for m in msg.meters
        if m.meter == "SM0000004"
    ]
    e, link = lossy
    cmd = command(
        e, 9, "SM0000004", "reacquire", channel="kwh_import_15m",
        **{"from": "2026-10-01T00:00:00+05:30", "to": "2026-10-01T02:00:00+05:30"},
    )  # fmt: skip
    settle(e)
    answers = [m for m in link.messages("profile") if m.correlation_id == cmd.message_id]
    assert len(answers) == 1 and answers[0].profile == p.BLOCK_LOAD
    assert answers[0].meters[0].rows == pushed[0] + pushed[1]
    assert len(answers[0].meters[0].rows) == 8
    assert final(link, 9).status == "executed" and final(link, 9).result == {"rows": 8}


# --- commands -----------------------------------------------------------------------------------


def test_disconnect_then_relay_read_back_shows_disconnected() -> None:
    e, link = engine()
    e.step()
    command(e, 1, "SM0000002", "disconnect")
    settle(e)
    assert [r.status for r in link.reports(1)] == ["queued", "acknowledged", "executed"]
    assert final(link, 1).result == {"relay": "disconnected"}
    command(e, 2, "SM0000002", "read", profile="relay")
    settle(e)
    assert final(link, 2).status == "executed"
    assert final(link, 2).result == {"relay": "disconnected"}
    relay_events = [ev for m in link.messages("events") for ev in m.events if ev.event_id == 301]
    assert [ev.meter for ev in relay_events] == ["SM0000002"]
    for _ in range(4):
        e.step()
    _, blocks = e.memory.window(1, 5)
    assert blocks[1, :, 0].tolist() == [0.0] * 4  # no energy through an open relay


def test_queued_is_reported_only_when_asked() -> None:
    e, link = engine(report_queued=False)
    e.step()
    command(e, 15, "SM0000002", "connect")
    settle(e)
    assert [r.status for r in link.reports(15)] == ["acknowledged", "executed"]
    assert final(link, 15).result == {"relay": "connected"}
    assert not [m for m in link.messages("events") for ev in m.events if ev.event_id == 302]  # never opened


def test_instantaneous_read_answers_a_profile_then_executed() -> None:
    e, link = engine()
    for _ in range(3):
        e.step()
    cmd = command(e, 3, "SM0000001", "read", profile=p.INSTANTANEOUS)
    settle(e)
    answer = next(m for m in link.messages("profile") if m.correlation_id == cmd.message_id)
    assert answer.profile == p.INSTANTANEOUS
    assert answer.columns[:3] == [p.CLOCK, "1.0.1.7.0.255", "1.0.9.7.0.255"]
    assert len(answer.meters[0].rows[0]) == len(answer.columns)
    assert final(link, 3).status == "executed"


def test_time_sync_clears_the_drift() -> None:
    e, link = engine()
    e.fleet.drift_rate[4] = 180.0
    for _ in range(97):  # the second day starts: the clock is three minutes off
        e.step()
    assert e.fleet.drift_s[4] == pytest.approx(360.0, abs=3)
    command(e, 4, "SM0000005", "time_sync")
    settle(e)
    assert e.fleet.drift_s[4] == 0.0
    assert final(link, 4).result["clock"].startswith("2026-10-02T00:")


def test_configure_credit_mode_and_firmware() -> None:
    e, link = engine(firmware_fail=0.0)
    e.step()
    command(e, 5, "SM0000006", "credit_update", amount="123.45")
    command(e, 6, "SM0000006", "payment_mode", mode="prepaid")
    command(e, 7, "SM0000006", "firmware", image="fw.bin", version="2.0.0", sha256="ab" * 32)
    command(e, 8, "SM0000006", "configure", reset="md")
    command(e, 10, "SM0000006", "payment_mode", mode="weekly")
    settle(e)
    credit = e.fleet.credit[5]
    assert final(link, 5).result == {"credit": str(credit)}
    assert final(link, 6).result == {"payment_mode": "prepaid"} and bool(e.fleet.prepaid[5])
    assert final(link, 7).result == {"firmware": "2.0.0"} and e.fleet.firmware[5] == "2.0.0"
    assert final(link, 8).result == {"reset": "md", "md_reset_count": 1}
    assert final(link, 10).status == "failed"
    # the firmware takes minutes: its report comes after the others
    times = {cid: final(link, cid).at for cid in (5, 7)}
    assert times[7] - times[5] >= timedelta(minutes=3)


def test_commands_fail_go_unanswered_or_lose_their_answer() -> None:
    e, link = engine(fail=0.3, no_answer=0.2, lost_answer=0.2)
    e.step()
    for cid in range(1, 101):
        command(e, cid, "SM0000003", "read", profile="relay")
    settle(e)
    finals = {cid: link.reports(cid)[-1].status if link.reports(cid) else None for cid in range(1, 101)}
    counts = {s: list(finals.values()).count(s) for s in (None, "failed", "acknowledged", "executed")}
    assert counts[None] == e.stats.commands["unanswered"] > 0
    assert counts["failed"] == e.stats.commands["failed"] > 0
    assert counts["acknowledged"] == e.stats.commands["answer_lost"] > 0
    assert counts["executed"] == e.stats.commands["executed"] > 0
    assert sum(counts.values()) == 100


def test_reports_are_on_the_commands_clock_and_its_deadline_counts_from_arrival() -> None:
    e, link = engine()
    e.step()
    sent = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # the MDM's clock, weeks after the simulated day
    for cid, minutes in ((11, 0.03), (12, 10)):
        e.commands.receive(
            p.CommandMessage(
                message_id=f"cmd-{cid}-1",
                sent_at=sent,
                command_id=cid,
                meter="SM0000001",
                action="disconnect",
                deadline=sent + timedelta(minutes=minutes),
            )
        )
    settle(e)
    assert [r.status for r in link.reports(11)] == ["queued", "timed_out"]
    assert link.reports(11)[-1].at == sent + timedelta(seconds=1)  # 2 s allowed: out at the first report
    assert [r.status for r in link.reports(12)] == ["queued", "acknowledged", "executed"]
    at = [r.at for r in link.reports(12)]
    assert at == sorted(at) and sent < at[0] and at[-1] < sent + timedelta(minutes=2)
    assert not bool(e.fleet.connected[0])  # the second disconnect did it


def test_a_command_to_a_meter_behind_a_dcu_that_is_down_fails() -> None:
    e, link = engine()
    e.step()
    e.schedule_dcu_outage(1, e.now - 60, e.now + 3600)
    command(e, 13, "SM0000015", "read", profile="relay")
    command(e, 14, "SM0000005", "read", profile="relay")
    settle(e)
    assert [r.status for r in link.reports(13)] == ["queued", "failed"]
    assert "DCU-0002" in final(link, 13).detail
    assert final(link, 14).status == "executed"


# --- events -------------------------------------------------------------------------------------


def test_outage_on_a_dt_each_meter_raises_101_then_102() -> None:
    e, link = engine()
    e.step()
    t0 = e.t0
    e.schedule_outage(1, t0 + 3600 + 100, t0 + 2 * 3600 + 200)
    for _ in range(12):
        e.step()
    messages = link.messages("events")
    events = [ev for m in messages for ev in m.events]
    assert len(messages) == 2  # the last gasps of a DT in one push, the restorations in another
    behind = [f"SM{k:07d}" for k in range(11, 21)] + ["DTM-DT-0002"]
    start = datetime.fromtimestamp(t0 + 3700, UTC)
    end = datetime.fromtimestamp(t0 + 7400, UTC)
    for serial in behind:
        mine = [ev for ev in events if ev.meter == serial and ev.event_id in (101, 102)]
        assert [ev.event_id for ev in mine] == [101, 102], serial
        drift = timedelta(seconds=10)  # the meters' clocks drift by seconds a day
        assert start - drift <= mine[0].occurred_at <= start + timedelta(seconds=5) + drift
        assert end - drift <= mine[1].occurred_at <= end + timedelta(seconds=30) + drift
        assert mine[0].log == "0.0.99.98.2.255"
    assert not [ev for ev in events if ev.event_id in (101, 102) and ev.meter not in behind]
    _, blocks = e.memory.window(0, 13)
    # blocks 5–8 (01:15–02:15) lie wholly in the outage; block 4 (01:00–01:15) lost 100 s of 900
    assert blocks[10:20, 5:8, 0].sum() == 0.0 and blocks[21, 5:8, 0].sum() == 0.0  # consumers, DT meter
    assert blocks[:10, 5:8, 0].sum() > 0.0
    assert np.all(
        blocks[10:20, 4, 0] <= np.round(consumer_day_kwh(e.fleet, 0)[10:20, 4] * 800 / 900, 3) + 0.001
    )


def test_load_violation_when_demand_exceeds_the_limit_set_by_configure() -> None:
    e, link = engine()
    e.step()
    command(e, 12, "SM0000007", "configure", load_limit_kw="0.01")
    settle(e)
    assert final(link, 12).result == {"load_limit_kw": "0.01"}
    for _ in range(95):
        e.step()
    found = [ev for ev in e.memory.events if ev.event_id == LOAD_VIOLATION_ID]
    assert [e.fleet.serial[ev.meter] for ev in found] == ["SM0000007"]
    assert found[0].data["limit_kw"] == 0.01 and found[0].data["demand_kw"] > 0.01
    # not a high-priority event: it arrives with the daily event-log push at midnight
    daily = [m for m in link.messages("events") if "evlog" in m.message_id]
    assert any(ev.meter == "SM0000007" and ev.event_id == LOAD_VIOLATION_ID for m in daily for ev in m.events)


def test_every_message_of_a_busy_day_is_valid() -> None:
    e, link = engine(
        miss=0.2, dcu_outage=0.5, outage_rate=1.0, event_rate=20.0, move_rate=0.2, fail=0.1, no_answer=0.1
    )
    for k in range(96):
        e.step()
        if k % 10 == 0:
            command(e, k + 1, "SM0000001", "read", profile="events")
    settle(e)
    kinds = {kind for kind, _ in link.raw}
    assert kinds == {"network", "profile", "events", "command_report"}
    for _, raw in link.raw:
        json.loads(raw)
        p.parse_message(raw)
    assert e.stats.missed_pushes > 0
    assert e.stats.events[101] > 0 and e.stats.events[102] > 0


def test_half_hour_blocks_and_the_billing_profile_at_the_month_end() -> None:
    link = MemoryLink()
    spec = FleetSpec(meters=6, dcus=1, start="2026-10-31", interval_s=1800)
    e = SimEngine(build_sim_fleet(spec), SimConfig(**QUIET, **SURE), link.send)
    e.start()
    for _ in range(48 + 2):  # the last day of October and an hour of November
        e.step()
    pushes = [m for m in link.messages("profile") if m.profile == p.BLOCK_LOAD]
    assert {m.capture_period_s for m in pushes} == {1800}
    assert e.stats.block_rows == (6 + 1 + 1) * 50
    clocks = [r[0] for m in pushes for meter in m.meters if meter.meter == "SM0000001" for r in meter.rows]
    assert clocks[:2] == ["2026-10-31T00:30:00+05:30", "2026-10-31T01:00:00+05:30"]
    assert clocks[-1] == "2026-11-01T01:00:00+05:30"
    billing = [m for m in link.messages("profile") if m.profile == p.BILLING]
    assert len(billing) == 2  # the DCU's meters and the feeder meter
    assert billing[0].columns[1:] == [
        "1.0.1.8.0.255", "1.0.9.8.0.255", "1.0.1.6.0.255", "1.0.13.0.0.255", "0.0.0.1.0.255"
    ]  # fmt: skip
    row = next(m.rows[0] for msg in billing for m in msg.meters if m.meter == "SM0000001")
    assert row[0] == "2026-11-01T00:00:00+05:30"
    daily = [m for m in link.messages("profile") if m.profile == p.DAILY]
    at_midnight = next(r for m in daily for mm in m.meters if mm.meter == "SM0000001" for r in mm.rows
                       if r[0] == "2026-11-01T00:00:00+05:30")  # fmt: skip
    assert row[1:3] == at_midnight[1:3]  # the billing registers are the midnight's
    _, blocks = e.memory.window(0, 48)
    assert row[3] == pytest.approx(float(np.round(blocks[0, :, 0].max() * 2, 3)), abs=0.002)  # MD [kW]
    assert row[5] == 1  # the first reset
    _, november = e.memory.window(48, 50)
    assert e.fleet.md_kw[0] == pytest.approx(november[0, :, 0].max() * 2, abs=0.002)  # reset, then anew


def test_bundle_names_every_serial_the_simulator_speaks_of() -> None:
    e, _ = engine()
    bundle = fleet_bundle(e.fleet)
    assert [m["serial"] for m in bundle["meters"]] == e.fleet.serial
    assert {b["serial"] for b in bundle["$boundary_meters"]} == {"DTM-DT-0001", "DTM-DT-0002", "FDM-FDR-01"}
    codes = {c["reading_type"] for c in bundle["meters"][0]["channels"]}
    assert {
        "kwh_import_15m",
        "kvah_import_15m",
        "voltage_avg_15m",
        "kwh_import_register",
        "md_reset_count",
    } <= codes
    modes = {sa["payment_mode"] for sa in bundle["service_agreements"]}
    assert modes <= {"prepaid", "postpaid"}


class ScriptedSource:
    """An MDM that answers nothing at first, then sends ``later`` once, after ``after`` looks."""

    def __init__(self, later: list[bytes], after: int) -> None:
        self.later, self.after, self.looks, self.acked = later, after, 0, 0

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Any]:
        self.looks += 1
        if self.looks < self.after or not self.later:
            return []
        out, self.later = self.later, []
        source = self

        class Item:
            def __init__(self, payload: bytes) -> None:
                self.payload = payload

            def ack(self) -> None:
                source.acked += 1

        return [Item(b) for b in out]


def test_run_answers_a_command_that_comes_while_idle_then_stops() -> None:
    from meter2cash.hes.sim_run import run

    link = MemoryLink()
    e = SimEngine(build_sim_fleet(FleetSpec(meters=4, dcus=1)), SimConfig(**QUIET, **SURE), link.send)
    cmd = p.CommandMessage(
        message_id="cmd-7-1", sent_at=datetime(2026, 12, 7, tzinfo=UTC), command_id=7, meter="SM0000001",
        action="read", params={"profile": "relay"},
    )  # fmt: skip
    reply = p.reply_to("some-push", [], kept=1, at=datetime(2026, 12, 7, tzinfo=UTC))
    source = ScriptedSource([p.dump(reply), p.dump(cmd), b"not json"], after=3)
    run(e, source, blocks=4, speed=0, idle=0.3)
    assert e.stats.intervals == 4
    assert [r.status for r in link.reports(7)] == ["queued", "acknowledged", "executed"]
    assert e.stats.replies == {"OK": 1, "unreadable": 1}
    assert source.acked == 3
    assert e.next_due() is None


class _Answer:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def ack(self) -> None:
        pass


class SlowMdm:
    """An MDM that replies to at most ``per_look`` of the messages sent so far each time it is
    looked at (``None``: never), and remembers the most messages ever awaiting its reply."""

    def __init__(self, link: MemoryLink, per_look: int | None) -> None:
        self.link, self.per_look, self.replied, self.most_awaiting = link, per_look, 0, 0

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Any]:
        self.most_awaiting = max(self.most_awaiting, len(self.link.raw) - self.replied)
        if self.per_look is None:
            time.sleep(min(timeout, 0.01))
            return []
        n = min(self.per_look, len(self.link.raw) - self.replied)
        at = datetime(2026, 12, 7, tzinfo=UTC)
        out = [_Answer(p.dump(p.reply_to(f"m{self.replied + i}", [], kept=1, at=at))) for i in range(n)]
        self.replied += n
        return out


def test_run_sends_no_further_ahead_of_the_replies_than_its_window() -> None:
    from meter2cash.hes.sim_run import run

    link = MemoryLink()
    cfg = SimConfig(**QUIET, **SURE, push_every_s=900)  # every DCU pushes every block
    e = SimEngine(build_sim_fleet(FleetSpec(meters=10, dcus=2)), cfg, link.send)
    mdm = SlowMdm(link, per_look=1)
    run(e, mdm, blocks=96, speed=0, window=6)
    assert e.stats.intervals == 96
    pushed = e.stats.sent["profile"]
    assert pushed >= 2 * 96  # two DCUs, every block (and the daily profile)
    # at most the window and what one block sends (a push per DCU, the daily profile, events)
    assert mdm.most_awaiting <= 6 + 6
    assert e.stats.unanswered == 0


def test_run_gives_up_waiting_for_replies_that_never_come() -> None:
    from meter2cash.hes.sim_run import run

    link = MemoryLink()
    cfg = SimConfig(**QUIET, **SURE, push_every_s=900)
    e = SimEngine(build_sim_fleet(FleetSpec(meters=10, dcus=2)), cfg, link.send)
    started = time.monotonic()
    run(e, SlowMdm(link, per_look=None), blocks=8, speed=0, window=4, patience=0.2)
    assert e.stats.intervals == 8
    assert e.stats.unanswered >= 4
    assert sum(e.stats.sent.values()) - e.stats.unanswered < 4 + 4  # the window and a last block
    assert time.monotonic() - started < 5
