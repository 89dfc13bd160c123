"""``m2c scheduler``: run the periodic jobs on their schedule (once per slot across processes),
show the jobs and when they run next, and the history of runs."""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import select

from meter2cash.cli.common import console, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.integration import scheduler as sched
from meter2cash.integration.scheduler_models import ScheduledRun

app = typer.Typer(help="The scheduler of the periodic jobs: run, jobs, history.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")
SCHEDULE = typer.Option(None, "--schedule", help="schedule file (default: M2C_SCHEDULE or the shipped one)")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _schedule(p: Any, path: Path | None) -> sched.Schedule:
    return sched.load_schedule(str(path) if path else (p.settings.schedule or None))


@app.command("run")
def run_cmd(
    schedule: Path | None = SCHEDULE,
    once: bool = typer.Option(False, "--once", help="run what is due now, then stop"),
    tick: float = typer.Option(5.0, "--tick", min=0.1, help="seconds between looks at the schedule"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the jobs as they fall due, until Ctrl-C or SIGTERM (or, with --once, what is due now).
    Any number of these may run at once: each slot of a job runs in one of them."""
    with platform() as p:
        plan = _schedule(p, schedule)
        if once:
            records = sched.run_due(p, plan)
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            records = []

            def show(r: sched.RunRecord) -> None:
                records.append(r)
                if not as_json:
                    console.print(
                        f"{r.slot:%Y-%m-%d %H:%M} {r.job}: {r.status} in {r.duration_s:.2f} s {r.error}"
                    )

            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop between runs
                sched.serve(p, plan, stop=stop, tick_s=tick, on_run=show)
    if as_json:
        print_json([r.to_dict() for r in records])
    elif once:
        out = table("Runs", Key("job"), "slot", "status", Num("seconds"), "result")
        for r in records:
            what = r.error or ", ".join(f"{k}={v}" for k, v in r.result.items())
            out.add_row(r.job, f"{r.slot:%Y-%m-%d %H:%M %z}", r.status, f"{r.duration_s:.2f}", what)
        console.print(out)
    if any(r.status == "failed" for r in records):
        raise typer.Exit(1)


@app.command("jobs")
def jobs_cmd(schedule: Path | None = SCHEDULE, as_json: bool = JSON_OPTION) -> None:
    """The jobs of the schedule, when each runs next and when it last ran."""
    with platform() as p:
        plan = _schedule(p, schedule)
        nxt = sched.next_runs(p, plan)
        last = sched.last_slots(p)
    rows: list[dict[str, Any]] = [
        {"job": j, "cron": s.cron, "catch_up": s.catch_up, "enabled": s.enabled,
         "next": _iso(nxt[j]), "last": _iso(last.get(j))}
        for j, s in plan.jobs.items()
    ]  # fmt: skip
    if as_json:
        print_json({"version": plan.version, "jobs": rows})
        return
    out = table(f"Schedule {plan.version}", Key("job"), "cron", "catch up", "enabled", "next", "last slot")
    for r in rows:
        out.add_row(r["job"], r["cron"], r["catch_up"], "yes" if r["enabled"] else "no", r["next"] or "",
                    r["last"] or "")  # fmt: skip
    console.print(out)


@app.command("history")
def history_cmd(
    job: str = typer.Option("", "--job", help="only this job"),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest runs, newest first: slot, outcome, duration, who ran it and what it did."""
    with platform() as p, p.sessions() as s:
        stmt = select(ScheduledRun).order_by(ScheduledRun.slot.desc(), ScheduledRun.id.desc()).limit(limit)
        if job:
            stmt = stmt.where(ScheduledRun.job == job)
        rows: list[dict[str, Any]] = [
            {"job": r.job, "slot": r.slot.isoformat(), "status": r.status, "runner": r.runner,
             "duration_s": r.duration_s, "result": r.result, "error": r.error}
            for r in s.scalars(stmt)
        ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    out = table("Scheduled runs", Key("job"), "slot (UTC)", "status", Num("seconds"), "runner", "result")
    for r in rows:
        secs = "" if r["duration_s"] is None else f"{r['duration_s']:.2f}"
        what = r["error"] or ", ".join(f"{k}={v}" for k, v in r["result"].items())
        out.add_row(r["job"], r["slot"][:16].replace("T", " "), r["status"], secs, r["runner"], what)
    console.print(out)
