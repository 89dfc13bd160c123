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
from meter2cash.cis.models import Account, Bill, ServiceAgreement
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.hes.delivery import write_delivery
from meter2cash.hes.simulator import INTERVAL_S, SLOTS, FleetConfig, build_fleet, inject_faults, simulate_load
from meter2cash.mdm.models import Channel, ReadingType
from meter2cash.mdm.store import MeasurementStore

#: A fixed, complete month keeps the demo's figures reproducible whatever the date.
DEFAULT_MONTH = "2026-09"
OPENING_RECHARGE = Decimal("1000.00")

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
    months, d = [], local_start.date().replace(day=1)
    while d < local_end.date():
        months.append(f"{d.year:04d}-{d.month:02d}")
        d = (d + timedelta(days=32)).replace(day=1)
    return start, end, months


@contextmanager
def _timed(report: DemoReport, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    report.timings[stage] = round(time.perf_counter() - t0, 2)


def run_demo(platform: Platform, cfg: DemoConfig, progress: Progress | None = None) -> DemoReport:
    """Run the whole job on ``platform`` (an empty, migrated database)."""
    from meter2cash.cis.billing import run_bills
    from meter2cash.cis.documents import write_bills_html
    from meter2cash.cis.ledger import ensure_chart, post, trial_balance
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
            results.extend(ingest_paths(platform, [path], source="demo-hes"))
            say(label, i + 1, len(paths))
        return results

    with _timed(report, "ingest"):
        on_time = ingest_files(files.on_time, "ingest")
    with _timed(report, "VEE"), platform.sessions() as s, s.begin():
        vee1 = run_vee(s, start=utc0, end=utc0 + timedelta(days=n_days), tz=tz)
    with _timed(report, "late files + VEE"):
        late = ingest_files(files.late, "late files")
        with platform.sessions() as s, s.begin():
            vee2 = run_vee(s, start=utc0, end=utc0 + timedelta(days=n_days), tz=tz)
    say("VEE", 1, 1)
    report.ingest = _ingest_totals(on_time, late)
    report.vee = {"first_pass": vee1.to_dict(), "after_late_files": vee2.to_dict()}

    with _timed(report, "bill run"), platform.sessions() as s, s.begin():
        _opening_recharges(s, post, currency, first_local)
        runs = [run_bills(s, m, tz=tz, currency=currency).to_dict() for m in months]
        say("bill run", 1, 1)
    report.billing = {"runs": runs}

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


def _opening_recharges(session: Any, post: Callable[..., Any], currency: str, day: date) -> None:
    """Prepaid consumers start the month with a recharge (cash in, wallet credit)."""
    rows = session.execute(
        select(ServiceAgreement.account_id, Account.number)
        .join(Account, Account.id == ServiceAgreement.account_id)
        .where(ServiceAgreement.payment_mode == "prepaid")
    ).all()
    for account_id, number in rows:
        post(
            session,
            kind="recharge",
            effective_date=day,
            reference=f"RC-{number}",
            memo="opening recharge",
            currency=currency,
            lines=[("1000", OPENING_RECHARGE, None), ("2100", -OPENING_RECHARGE, account_id)],
        )


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
    est = (w.flags & Quality.ESTIMATED) != 0
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
    w = MeasurementStore(session).read_window(ids, start, end, INTERVAL_S)
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
