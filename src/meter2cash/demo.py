"""The main job on a simulated utility: master data → HES files → ingest → VEE → bill run → ledger.

Every stage goes through the same services the CLI and API use; the demo only orchestrates them
and collects what each stage reports, so its figures are the platform's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select

from meter2cash.bootstrap import Platform
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import local_month_bounds, month_code, month_start, next_month_start
from meter2cash.hes.delivery import write_delivery
from meter2cash.hes.reread_answers import STATE_FILE, SimulatedHes, demo_rereads, save_state
from meter2cash.hes.simulator import INTERVAL_S, SLOTS, FleetConfig, build_fleet, inject_faults, simulate_load
from meter2cash.mdm.models import Channel, ReadingType
from meter2cash.mdm.store import MeasurementStore

#: A fixed, complete month keeps the demo's figures reproducible whatever the date.
DEFAULT_MONTH = "2026-09"
OPENING_RECHARGE = Decimal("600.00")
TOP_UP = Decimal("500.00")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoConfig:
    meters: int = 1000
    days: int = 30
    month: str = DEFAULT_MONTH
    seed: int = 42
    bills_html: int = 6


@dataclass
class DemoReport:
    """What the demo did, stage by stage (JSON-serialisable through :meth:`to_dict`)."""

    config: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    masterdata: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)
    vee: dict[str, Any] = field(default_factory=dict)
    estimation: dict[str, Any] = field(default_factory=dict)
    billing: dict[str, Any] = field(default_factory=dict)
    prepaid: dict[str, Any] = field(default_factory=dict)
    payments: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    bill_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def examples_dir() -> Path:
    """The tariff and master-data examples shipped with the source tree."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / "examples" / "tariffs").is_dir():
            return base / "examples"
    raise FileNotFoundError("examples/tariffs not found: run the demo from a meter2cash checkout")


def demo_window(cfg: DemoConfig, tz: str) -> tuple[datetime, datetime, list[str]]:
    """The simulated local window ``[start, end)`` (UTC) ending at the month's end, and its months."""
    _, end = local_month_bounds(cfg.month, tz)
    zone = ZoneInfo(tz)
    local_end = end.astimezone(zone)
    local_start = (local_end - timedelta(days=cfg.days)).replace(tzinfo=None).replace(tzinfo=zone)
    start = local_start.astimezone(UTC)
    months, d = [], month_start(local_start.date())
    while d < local_end.date():
        months.append(month_code(d))
        d = next_month_start(d)
    return start, end, months


@contextmanager
def _timed(report: DemoReport, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    report.timings[stage] = round(time.perf_counter() - t0, 2)


def run_demo(platform: Platform, cfg: DemoConfig, progress: Progress | None = None) -> DemoReport:
    """Run the whole job on ``platform`` (an empty, migrated database)."""
    from meter2cash.cis.billing.documents import write_bills_html
    from meter2cash.cis.billing.run import run_bills
    from meter2cash.cis.ledger.journal import ensure_chart, trial_balance
    from meter2cash.cis.parties.customer_classes import service_point_classes
    from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
    from meter2cash.integration.masterdata import load_bundle
    from meter2cash.mdm.ingest import ingest_paths
    from meter2cash.mdm.vee.service import run_vee

    settings = platform.settings
    tz, currency = settings.timezone, settings.currency
    say: Progress = progress or (lambda stage, done, total: None)
    report = DemoReport(
        config={
            "meters": cfg.meters,
            "days": cfg.days,
            "month": cfg.month,
            "seed": cfg.seed,
            "timezone": tz,
            "currency": currency,
            "database": platform.engine.url.render_as_string(),
        }
    )
    start, end, months = demo_window(cfg, tz)
    utc0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    n_days = (end - utc0 + timedelta(seconds=86399)).days
    n_int = n_days * SLOTS
    first_local = start.astimezone(ZoneInfo(tz)).date()

    with _timed(report, "master data"):
        fleet = build_fleet(FleetConfig(meters=cfg.meters, seed=cfg.seed), first_local, tz)
        for sa in fleet.bundle["service_agreements"]:
            sa["start_date"] = first_local.isoformat()  # billing starts with the simulated data
        with platform.sessions() as s, s.begin():
            for path in sorted((examples_dir() / "tariffs").glob("*.toml")):
                store_tariff(s, load_tariff_file(path), path.read_text())
            loaded = load_bundle(s, fleet.bundle, actor="demo")
            ensure_chart(s)
        report.masterdata = loaded.to_dict()
        say("master data", 1, 1)

    with _timed(report, "simulate HES"):
        true = simulate_load(fleet, utc0, n_int, tz, seed=cfg.seed + 1)
        delivered, late_mask, faults = inject_faults(true, seed=cfg.seed + 2)
        out_dir = settings.var_dir / "demo" / "hes"
        for old in out_dir.glob("hes-*"):
            old.unlink()
        files = write_delivery(fleet, delivered, late_mask, true, utc0, out_dir, seed=cfg.seed + 3)
        report.faults = {
            **faults.summary(),
            "malformed_lines": files.malformed_lines,
            "files": len(files.on_time),
            "late_files": len(files.late),
        }

    def ingest_files(paths: list[Path], label: str) -> list[Any]:
        results = []
        for i, path in enumerate(paths):
            results.extend(ingest_paths(platform.sessions, [path], source="demo-hes"))
            say(label, i + 1, len(paths))
        return results

    with _timed(report, "ingest"):
        on_time = ingest_files(files.on_time, "ingest")
    with _timed(report, "VEE"), platform.sessions() as s, s.begin():
        vee1 = run_vee(
            s, start=utc0, end=utc0 + timedelta(days=n_days), tz=tz, customer_classes=service_point_classes
        )
    with _timed(report, "late files + VEE"):
        late = ingest_files(files.late, "late files")
        with platform.sessions() as s, s.begin():
            vee2 = run_vee(
                s,
                start=utc0,
                end=utc0 + timedelta(days=n_days),
                tz=tz,
                customer_classes=service_point_classes,
            )
    with _timed(report, "re-reads"):  # the head-end reads the meters of open exceptions again
        seeds = {"meters": cfg.meters, "fleet_seed": cfg.seed, "load_seed": cfg.seed + 1}
        save_state(settings.var_dir / STATE_FILE, **seeds, start_utc=utc0, n_intervals=n_int, tz=tz)
        hes = SimulatedHes(fleet.serials, true, utc0)
        end_utc = utc0 + timedelta(days=n_days)
        rereads = demo_rereads(
            platform.sessions,
            hes,
            out_dir / "rereads",
            start=utc0,
            end=end_utc,
            tz=tz,
            customer_classes=service_point_classes,
        )
    say("VEE", 1, 1)
    report.ingest = _ingest_totals(on_time, late)
    report.vee = {"first_pass": vee1.to_dict(), "after_late_files": vee2.to_dict(), "rereads": rereads}

    with _timed(report, "prepaid daily runs"):
        report.prepaid = _prepaid_month(platform, first_local, end, tz, currency, cfg.seed, cfg.meters, say)
    with _timed(report, "bill run"), platform.sessions() as s, s.begin():
        runs = [
            run_bills(s, m, tz=tz, currency=currency, usage=platform.usage, clock=platform.clock).to_dict()
            for m in months
        ]
        say("bill run", 1, 1)
    report.billing = {"runs": runs}
    with _timed(report, "payments"), platform.sessions() as s, s.begin():
        last_local = (end - timedelta(seconds=1)).astimezone(ZoneInfo(tz)).date()
        report.payments = _postpaid_payments(s, last_local, currency, cfg.seed)

    with platform.sessions() as s:
        report.estimation = _estimation_accuracy(s, fleet.serials, true, delivered, utc0, n_int)
        report.energy = _energy_check(s, start, end)
        tb = trial_balance(s)
        report.ledger = tb.to_dict()
        with _timed(report, "bill documents"):
            ids = _sample_bills(s, cfg.bills_html)
            paths = write_bills_html(s, ids, settings.var_dir / "bills")
        report.bill_files = [str(p) for p in paths]
    if Decimal(report.energy["difference_kwh"]) != 0:
        report.problems.append(
            f"energy billed differs from energy stored by {report.energy['difference_kwh']} kWh"
        )
    statements = sum(
        (
            Decimal(t["amount"])
            for run in report.billing["runs"]
            for t in run.get("totals", [])
            if t["kind"] == "prepaid"
        ),
        Decimal(0),
    )
    if report.prepaid and Decimal(report.prepaid["charged"]) != statements:
        report.problems.append(
            f"prepaid charged daily {report.prepaid['charged']} differs from the monthly statements "
            f"{statements}"
        )
    if Decimal(str(report.ledger.get("total", "0"))) != 0:
        report.problems.append(f"trial balance is {report.ledger.get('total')}, not zero")
    return report


def _ingest_totals(on_time: list[Any], late: list[Any]) -> dict[str, Any]:
    def total(results: list[Any]) -> dict[str, int]:
        keys = (
            "rows_total",
            "rows_accepted",
            "rows_rejected",
            "intervals_new",
            "intervals_duplicate",
            "intervals_changed",
            "registers",
            "events",
        )
        out = {k: sum(int(getattr(r, k, 0) or 0) for r in results) for k in keys}
        out["files"] = len(results)
        out["duplicate_files"] = sum(1 for r in results if r.duplicate_file)
        return out

    problems = [str(p) for r in on_time + late for p in r.problems][:20]
    return {"on_time": total(on_time), "late": total(late), "problems": problems}


def _prepaid_accounts(session: Any) -> list[int]:
    return list(
        session.scalars(
            select(ServiceAgreement.account_id)
            .where(ServiceAgreement.payment_mode == "prepaid")
            .order_by(ServiceAgreement.account_id)
        )
    )


def _prepaid_month(
    platform: Platform,
    first: date,
    end: datetime,
    tz: str,
    currency: str,
    seed: int,
    meters: int,
    say: Progress,
) -> dict[str, Any]:
    """Prepaid consumers: an opening recharge, a daily charge for every local day (alerts, disconnect
    and reconnect requests by policy), and a top-up in the middle of the window by most of them.
    Their connect and disconnect commands go to a simulated head-end in its own process over the
    MQTT broker, which carries them out and reads the relay back (in process when there is no
    broker)."""
    from meter2cash.cis.prepaid.policy import PrepaidPolicy
    from meter2cash.cis.prepaid.wallet import recharge_account, reconnect_report, wallet_balances
    from meter2cash.hes.fleet import FleetSpec
    from meter2cash.integration.sim_link import open_field
    from meter2cash.mdm.commands.models import MeterCommand

    policy = PrepaidPolicy()

    rng = np.random.default_rng(seed + 4)
    zone = ZoneInfo(tz)
    last = (end - timedelta(seconds=1)).astimezone(zone).date()
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    totals: dict[str, Any] = {
        "days": len(days),
        "recharges": 0,
        "recharged": Decimal(0),
        "charged": Decimal(0),
        "kwh": Decimal(0),
        "alerts": 0,
        "disconnect_requests": 0,
        "disconnects_deferred": 0,
        "reconnect_requests": 0,
    }

    def top_up(accounts: list[int], amount: Decimal, day: date, channel: str) -> None:
        with platform.sessions() as s, s.begin():
            for account_id in accounts:
                recharge_account(
                    s,
                    account_id,
                    amount,
                    channel=channel,
                    currency=currency,
                    received_on=day,
                    at=datetime(day.year, day.month, day.day, 10, tzinfo=zone),
                    tz=tz,
                )
        totals["recharges"] += len(accounts)
        totals["recharged"] += amount * len(accounts)

    with platform.sessions() as s:
        accounts = _prepaid_accounts(s)
    head_end = open_field(
        platform.settings,
        platform.sessions,
        FleetSpec(meters=meters, dcus=-(-meters // 25), start=first.isoformat(), days=1, seed=seed, tz=tz),
        platform.settings.var_dir / "demo" / "hes-sim",
        platform.settings.mqtt_url,
    )
    totals["head_end"] = (
        f"a simulated head-end process over MQTT ({platform.settings.mqtt_url})"
        if head_end
        else f"in process (no MQTT broker at {platform.settings.mqtt_url})"
    )
    try:
        if head_end:
            head_end.at(datetime(first.year, first.month, first.day, 10, tzinfo=zone))
        _prepaid_days(
            platform, head_end, accounts, days, first, policy, tz, currency, rng, totals, top_up, say
        )
    finally:
        if head_end:
            head_end.close()
            totals["head_end_commands"] = head_end.simulator.get("commands", {})
            totals["commands_unsettled"] = head_end.settle(0)
    with platform.sessions() as s:
        balances = wallet_balances(s, accounts)
        totals["reconnects"] = reconnect_report(s)
        totals["reconnect_requests"] = s.scalar(
            select(func.count()).select_from(MeterCommand).where(MeterCommand.kind == "connect")
        )
    money = [Decimal(balances.get(a, 0)).scaleb(-4) for a in accounts]
    totals.update(
        wallets=len(accounts),
        negative_at_end=sum(1 for m in money if m < 0),
        balance_at_end=sum(money, Decimal(0)),
    )
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in totals.items()}


def _prepaid_days(
    platform: Platform,
    head_end: Any,
    accounts: list[int],
    days: list[date],
    first: date,
    policy: Any,
    tz: str,
    currency: str,
    rng: np.random.Generator,
    totals: dict[str, Any],
    top_up: Callable[[list[int], Decimal, date, str], None],
    say: Progress,
) -> None:
    """Each day: top-ups (a recharge asks for reconnection), the daily charge, the morning's look
    at the wallets (disconnects); the head-end carries out the commands and reports back."""
    from meter2cash.cis.prepaid.daily_charge import run_daily
    from meter2cash.cis.prepaid.wallet import evaluate_wallets, wallet_balances

    zone = ZoneInfo(tz)
    for i, day in enumerate(days):
        if i == len(days) // 2:
            takers = [a for a in accounts if rng.random() < 0.6]
            top_up(takers, TOP_UP, day, "online")
        elif i:
            # Most consumers who ran out recharge the next day, which asks for reconnection.
            with platform.sessions() as s:
                balances = wallet_balances(s, accounts)
            empty = [a for a in accounts if balances.get(a, 0) < 0 and rng.random() < 0.7]
            top_up(empty, TOP_UP, day, "online")
        if head_end:
            head_end.settle()  # the reconnections the top-ups asked for
        # The charge runs after midnight, inside the no-disconnection window; the wallets are
        # looked at again in the morning, when policy allows a disconnection.
        morning = datetime(day.year, day.month, day.day, 10, tzinfo=zone) + timedelta(days=1)
        if head_end:
            head_end.at(morning)
        with platform.sessions() as s, s.begin():
            r = run_daily(s, day, tz=tz, currency=currency, usage=platform.usage).to_dict()
            r2 = evaluate_wallets(s, morning, tz=tz, policy=policy).to_dict()
            if not head_end:
                _hes_executes_commands(s, rng)
        if head_end:
            head_end.settle()
        totals["charged"] += Decimal(r["amount"])
        totals["kwh"] += Decimal(r["kwh"])
        for k in ("alerts", "disconnect_requests"):
            totals[k] += int(r.get(k, 0)) + int(r2.get(k, 0))
        totals["disconnects_deferred"] += int(r.get("disconnects_deferred", 0))
        say("prepaid", i + 1, len(days))


def _hes_executes_commands(session: Any, rng: np.random.Generator) -> None:
    """The simulated head-end carries out the connection commands requested so far: sent within a
    minute, acknowledged a few minutes later, executed (the relay switched) 5 to 150 minutes after
    the request; one in fifty fails and is left for the next attempt."""
    from meter2cash.cis.prepaid.wallet import report_command
    from meter2cash.mdm.commands.models import MeterCommand

    pending = session.scalars(
        select(MeterCommand)
        .where(MeterCommand.status == "requested", MeterCommand.kind.in_(("connect", "disconnect")))
        .order_by(MeterCommand.id)
    ).all()
    for cmd in pending:
        t0 = cmd.requested_at
        report_command(session, cmd.id, "sent", at=t0 + timedelta(seconds=int(rng.integers(5, 60))))
        if rng.random() < 0.02:
            report_command(session, cmd.id, "failed", at=t0 + timedelta(minutes=10), detail="no response")
            continue
        report_command(session, cmd.id, "acknowledged", at=t0 + timedelta(minutes=int(rng.integers(1, 5))))
        relay = {"relay": "connected" if cmd.kind == "connect" else "disconnected"}
        done = t0 + timedelta(minutes=int(rng.integers(5, 150)))
        report_command(session, cmd.id, "executed", at=done, result=relay)


def _postpaid_payments(session: Any, on: date, currency: str, seed: int) -> dict[str, Any]:
    """Most postpaid consumers pay their bill in full, a few in part, through several channels."""
    from meter2cash.cis.payments.receipts import receive
    from meter2cash.cis.reports.receivables import ageing, collections_by_channel

    rng = np.random.default_rng(seed + 5)
    channels = ("cash", "cheque", "agent", "online")
    bills = session.execute(
        select(Bill.account_id, Bill.total)
        .where(Bill.kind == "postpaid", Bill.status == "issued")
        .order_by(Bill.id)
    ).all()
    paid_day = on + timedelta(days=7)
    full = part = 0
    for account_id, total in bills:
        draw = rng.random()
        if draw < 0.7:
            amount, full = total, full + 1
        elif draw < 0.8:
            amount, part = (total / 2).quantize(Decimal("0.01")), part + 1
        else:
            continue
        receive(
            session,
            account_id,
            amount,
            channel=channels[int(rng.integers(0, 4))],
            currency=currency,
            received_on=paid_day,
        )
    by_channel = collections_by_channel(session, paid_day, paid_day)
    due = session.scalar(select(func.max(Bill.due_date)).where(Bill.kind == "postpaid")) or paid_day
    aged = ageing(session, due + timedelta(days=45)).to_dict()
    return {
        "as_of": (due + timedelta(days=45)).isoformat(),
        "bills": len(bills),
        "paid_in_full": full,
        "paid_in_part": part,
        "unpaid": len(bills) - full - part,
        "by_channel": by_channel,
        "ageing": aged.get("totals", aged),
    }


def _kwh_channels(session: Any) -> tuple[list[int], list[str]]:
    from meter2cash.mdm.models import Meter

    rows = session.execute(
        select(Channel.id, Meter.serial)
        .join(Meter, Meter.id == Channel.meter_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(ReadingType.code == "kwh_import_15m")
        .order_by(Meter.serial)
    ).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def _estimation_accuracy(
    session: Any, serials: list[str], true: np.ndarray, delivered: np.ndarray, utc0: datetime, n_int: int
) -> dict[str, Any]:
    """Compare what VEE estimated with the simulator's true consumption."""
    ids, order = _kwh_channels(session)
    row_of = {s: i for i, s in enumerate(serials)}
    w = MeasurementStore(session).read_window(
        ids, utc0, utc0 + timedelta(seconds=n_int * INTERVAL_S), INTERVAL_S
    )
    t = true[[row_of[s] for s in order]]
    est = (w.flags & np.uint16(Quality.ESTIMATED)) != 0
    err = np.abs(w.values[est] - t[est])
    valid = np.isfinite(w.values)
    return {
        "intervals": int(w.values.size),
        "estimated_intervals": int(est.sum()),
        "estimated_share": float(est.sum() / max(1, w.values.size)),
        "still_missing": int((~valid).sum()),
        "estimate_mae_kwh": float(err.mean()) if err.size else 0.0,
        "estimate_mean_true_kwh": float(t[est].mean()) if est.any() else 0.0,
        "estimated_kwh": float(np.nansum(w.values[est])),
        "true_kwh_of_estimated": float(t[est].sum()),
    }


def _energy_check(session: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """Energy in (validated store over the billing window) against energy billed, in kWh.

    Each agreement's energy is rounded to Wh as the bill rounds it, then summed exactly.
    """
    ids, _ = _kwh_channels(session)
    w = MeasurementStore(session).read_window(ids, start, end, INTERVAL_S, include_raw=False)
    per_channel_wh = np.rint(np.nansum(w.values, axis=1) * 1000).astype(np.int64)
    stored = Decimal(int(per_channel_wh.sum())).scaleb(-3)
    billed = Decimal(
        session.scalar(
            select(func.coalesce(func.sum(Bill.total_kwh), 0)).where(Bill.status.in_(("issued", "statement")))
        )
        or 0
    )
    return {"stored_kwh": str(stored), "billed_kwh": str(billed), "difference_kwh": str(billed - stored)}


def _sample_bills(session: Any, n: int) -> list[int]:
    """A few bills of every kind and class, for the HTML output."""
    ids: list[int] = []
    for cls in ("residential", "commercial"):
        for kind in ("postpaid", "prepaid"):
            stmt = (
                select(Bill.id)
                .join(Account, Account.id == Bill.account_id)
                .where(Account.customer_class == cls, Bill.kind == kind)
                .order_by(Bill.id)
                .limit(max(1, n // 3))
            )
            ids.extend(session.scalars(stmt))
    return ids[:n]
