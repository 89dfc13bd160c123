"""``m2c vee``: validation, estimation and editing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.customer_classes import service_point_classes
from meter2cash.cli.common import console, err_console, platform
from meter2cash.db import transaction
from meter2cash.mdm.models import ChannelDay
from meter2cash.mdm.vee.candidates import meter_channels
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.service import run_vee, vee_report

app = typer.Typer(help="Validation, estimation and editing of interval data.", no_args_is_help=True)


def _day_bounds(session: Session, pending: bool) -> tuple[date, date] | None:
    stmt = select(func.min(ChannelDay.day), func.max(ChannelDay.day))
    if pending:
        stmt = stmt.where(ChannelDay.vee_status == "raw")
    lo, hi = session.execute(stmt).one()
    return None if lo is None else (lo, hi)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def _show(findings_by_rule: dict[str, dict[str, Any]], by_method: dict[str, int]) -> None:
    rows = [[rule, agg["findings"], agg["intervals"]] for rule, agg in sorted(findings_by_rule.items())]
    console.print(_table("Findings by rule", ["rule", "findings", "intervals"], rows))
    console.print(
        _table("Estimated intervals", ["method", "intervals"], [[m, n] for m, n in by_method.items()])
    )


@app.command("run")
def run(
    from_: datetime | None = typer.Option(None, "--from", formats=["%Y-%m-%d"], help="First UTC day"),
    to: datetime | None = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last UTC day (inclusive)"),
    meter: list[str] = typer.Option([], "--meter", "--meters", help="Meter serial (repeatable)"),
    all_days: bool = typer.Option(False, "--all", help="Re-validate validated days too, not only pending"),
    rules: Path | None = typer.Option(None, "--rules", help="Rule set TOML file"),
    rule_set_name: str | None = typer.Option(
        None, "--rule-set", help="A packaged or stored rule set by name (default: by eligibility)"
    ),
    history_days: int = typer.Option(14, "--history-days", min=0, help="Days of context before each day"),
) -> None:
    """Validate and estimate interval data (default: every pending day).

    Exit 0: every chunk validated; 1: some chunks failed (named, on stderr; their days stay
    pending and the rest is validated); 2: nothing done (usage, database, one line with its code)."""
    with platform() as p, transaction(p.sessions) as session:
        from meter2cash.mdm.vee.ruleset.store import get_rule_set

        rule_set = (
            RuleSet.from_toml(rules)
            if rules
            else (get_rule_set(session, rule_set_name) if rule_set_name else None)
        )
        ids = meter_channels(session, meter) if meter else None
        bounds = _day_bounds(session, pending=not all_days)
        first = from_.date() if from_ else (bounds[0] if bounds else None)
        last = to.date() if to else (bounds[1] if bounds else None)
        if first is None or last is None or last < first:
            console.print("nothing to validate")
            return
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        with Progress(
            TextColumn("VEE"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("vee", total=None)
            result = run_vee(
                session,
                start=start,
                end=end,
                channel_ids=ids,
                rule_set=rule_set,
                only_pending=not all_days,
                history_days=history_days,
                tz=p.settings.tz,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                customer_classes=service_point_classes,
            )
    console.print(
        f"VEE run {result.run_id} ({result.rule_set} v{result.rule_set_version}): "
        f"{result.channel_days} channel-days, {result.intervals} intervals, "
        f"{result.estimated_intervals} estimated, {result.missing_after} still missing, "
        f"{result.exceptions} exceptions opened"
    )
    for m in result.learned_models:
        how = "trained and stored by this run" if m["trained"] else "stored"
        console.print(f"learned model {m['scope']} ({m['interval_s']} s) version {m['version']}, {how}")
    if any(result.rereads.values()):
        console.print(
            f"re-read requests: {result.rereads['completed']} completed, {result.rereads['failed']} failed"
        )
    _show(result.findings_by_rule, result.estimated_by_method)
    if result.failures:
        _show_failures(result.failures)
        raise typer.Exit(1)


def _show_failures(failures: list[dict[str, Any]]) -> None:
    days = sum(f["channel_days"] for f in failures)
    err_console.print(
        f"[red]error[/red] vee.chunk_failed: {len(failures)} chunk(s) failed, {days} channel-days "
        "left pending (see m2c vee report):"
    )
    for f in failures:
        more = len(f["channels"]) - len(f["meters"])
        names = ", ".join(f["meters"]) + (f" and {more} more" if more > 0 else "")
        err = f["error"]
        err_console.print(
            f"  {names} {f['first_day']}..{f['last_day']}: {err['code']}: {err['type']}: {err['message']}",
            markup=False,
            highlight=False,
        )


@app.command("train")
def train_cmd(
    from_: datetime | None = typer.Option(None, "--from", formats=["%Y-%m-%d"], help="First UTC day"),
    to: datetime | None = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last UTC day (inclusive)"),
    customer_class: list[str] = typer.Option(
        [], "--class", help="Customer class (repeatable; 'none' = no class; default: every class)"
    ),
    interval: int = typer.Option(900, "--interval", help="Interval length [s] of the channels"),
    days: int = typer.Option(90, "--days", min=1, help="Without --from: this many days up to --to"),
    seed: int = typer.Option(2026, "--seed", help="Seed of the held-out gaps and the training gaps"),
) -> None:
    """Train the learned estimator per customer class on validated history and store a new version."""
    from meter2cash.mdm.vee.learned_store import train_models

    with platform() as p, transaction(p.sessions) as session:
        last: date | None = to.date() if to else None
        if last is None:
            stmt = select(func.max(ChannelDay.day)).where(ChannelDay.vee_status == "validated")
            last = session.scalar(stmt)
            if last is None:
                console.print("no validated data to train on")
                return
        first = from_.date() if from_ else last - timedelta(days=days - 1)
        out = train_models(
            session,
            start=first,
            end=last,
            classes=customer_class or None,
            interval_s=interval,
            seed=seed,
            tz=p.settings.tz,
            actor="cli",
            customer_classes=service_point_classes,
        )
    rows = []
    for e in out:
        m = e.get("metrics", {})
        rows.append(
            [
                e["scope"],
                e.get("version", "-") if e["stored"] else "not stored",
                e["channels"],
                e.get("samples", 0),
                m.get("holdout_intervals", 0),
                _mae(m.get("mae_learned_same", m.get("mae_learned"))),
                _mae(m.get("mae_like_day")),
            ]
        )
    console.print(f"training window {first} .. {last}, {interval} s intervals")
    console.print(
        _table(
            "Learned models",
            ["scope", "version", "channels", "samples", "held out", "MAE learned", "MAE like-day"],
            rows,
        )
    )


def _mae(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


@app.command("models")
def models_cmd(
    active: bool = typer.Option(False, "--active", help="Only the active version of each scope"),
) -> None:
    """The stored learned models with their held-out errors."""
    from meter2cash.mdm.vee.learned_store import list_models

    with platform() as p, p.sessions() as session:
        models = list_models(session, active_only=active)
    if not models:
        console.print("no learned models stored (m2c vee train, or a VEE run with long gaps, stores one)")
        return
    table = Table(title="Learned VEE models", box=box.SIMPLE)
    for col in ("scope", "interval", "version", "active", "trained at", "history", "channels", "samples"):
        table.add_column(col, justify="left" if col in ("scope", "trained at", "history") else "right")
    table.add_column("MAE learned", justify="right")
    table.add_column("MAE like-day", justify="right")
    for m in models:
        mt = m["metrics"] or {}
        table.add_row(
            m["scope"],
            f"{m['interval_s']} s",
            str(m["version"]),
            "yes" if m["active"] else "no",
            m["trained_at"][:16].replace("T", " "),
            f"{m['history_from']} .. {m['history_to']}",
            str(m["channels"]),
            str(m["samples"]),
            _mae(mt.get("mae_learned_same", mt.get("mae_learned"))),
            _mae(mt.get("mae_like_day")),
        )
    console.print(table)


@app.command("report")
def report(run_id: int | None = typer.Option(None, "--run", help="VEE run id (default: the latest)")) -> None:
    """Findings by rule of a VEE run."""
    with platform() as p, p.sessions() as session:
        rep = vee_report(session, run_id)
    console.print(
        f"VEE run {rep['run_id']} [{rep['status']}] {rep['window_start']} .. {rep['window_end']} "
        f"({rep['rule_set']} v{rep['rule_set_version']}): {rep['channel_days']} channel-days, "
        f"{rep['findings']} findings, {rep['estimated_intervals']} estimated intervals",
        markup=False,
    )
    _show(rep["findings_by_rule"], rep["estimated_by_method"])
    if rep.get("failures"):
        _show_failures(rep["failures"])


def accuracy_table(rep: Any) -> Table:
    """The accuracy report as a Rich table: MAE [kWh] / MAPE [%] per band and method."""
    from meter2cash.mdm.vee.research.accuracy import METHODS

    table = Table(title=f"Estimation accuracy on {rep.channels} real households (MAE kWh / MAPE %)")
    table.add_column("gap length")
    table.add_column("gaps", justify="right")
    short = {"linear_interpolation": "linear", "like_day_profile": "like-day", "average_daily_use": "avg"}
    for m in METHODS:
        table.add_column(short.get(m, m), justify="right")

    def cells(errs: list[Any]) -> list[str]:
        best = min(e.mae for e in errs)
        return [("[bold green]" if e.mae == best else "") + f"{e.mae:.4f}/{e.mape:.0f}%" for e in errs]

    for band, by_method in rep.errors.items():
        table.add_row(band, str(rep.gaps[band]), *cells([by_method[m] for m in METHODS]))
    table.add_row(
        "overall", str(sum(rep.gaps.values())), *cells([rep.overall(m) for m in METHODS]), end_section=True
    )
    return table


@app.command("accuracy")
def accuracy(
    data_dir: Path = typer.Option(
        Path("../shared/data/loadprofiles"), "--data", help="Directory with the load profile files"
    ),
    gaps: int = typer.Option(60, "--gaps", min=1, help="Hidden gaps per household"),
    seed: int = typer.Option(2026, "--seed"),
) -> None:
    """Hide random gaps (1 interval to 7 days) in real load profiles and score every estimator."""
    from meter2cash.mdm.vee.research.accuracy import load_london, load_sgsc, run_accuracy

    london, sgsc = data_dir / "lcl_MAC000060.csv", data_dir / "sgsc_smart_meter10.csv.gz"
    missing = [str(p) for p in (london, sgsc) if not p.exists()]
    if missing:
        err_console.print(f"[red]error[/red] vee.accuracy_data_missing: {', '.join(missing)}")
        raise typer.Exit(2)
    series = load_london(london) + load_sgsc(sgsc)[0]
    rep = run_accuracy(series, gaps_per_channel=gaps, seed=seed)
    console.print(accuracy_table(rep))
    best = rep.best_classical()
    console.print(
        f"learned MAE {rep.overall('learned').mae:.4f} kWh vs best classical ({best}) "
        f"{rep.overall(best).mae:.4f} kWh: {rep.learned_gain():.1f}% lower"
    )


exceptions_app = typer.Typer(help="The VEE exceptions work queue.", no_args_is_help=True)
app.add_typer(exceptions_app, name="exceptions")


@exceptions_app.command("list")
def exceptions_list(
    status: str | None = typer.Option(None, help="open, assigned, reread_requested, resolved"),
    rule: str | None = typer.Option(None, help="Rule code, e.g. vee.sum_check"),
    assignee: str | None = typer.Option(None),
    meter: str | None = typer.Option(None, help="Meter serial"),
    all_: bool = typer.Option(False, "--all", help="Resolved ones too"),
    limit: int = typer.Option(50, min=1, max=1000),
) -> None:
    """Exceptions, most urgent first (priority, then age)."""
    from meter2cash.mdm.vee.work_queue import list_exceptions

    with platform() as p, p.sessions() as session:
        items, total = list_exceptions(
            session,
            status=status,
            rule=rule,
            assignee=assignee,
            meter=meter,
            open_only=not all_ and status is None,
            limit=limit,
        )
    table = Table(title=f"VEE exceptions ({len(items)} of {total})", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ["id", "prio age", "status", "rule (vee.)", "meter", "day", "slots", "assignee"]:
        table.add_column(col, overflow="fold", no_wrap=col in ("rule (vee.)", "day"))
    for row in (
        [
            e["id"],
            f"{e['priority']} {e['age_hours']}h",
            e["status"],
            e["rule"].removeprefix("vee."),
            e["meter"],
            e["day"],
            f"{e['first_slot']}+{e['slot_count']}",
            e["assignee"] or "",
        ]
        for e in items
    ):
        table.add_row(*(str(v) for v in row))
    console.print(table)


@exceptions_app.command("show")
def exceptions_show(exception_id: int = typer.Argument(..., help="Exception id")) -> None:
    """One exception: finding data, values, comments, re-read requests."""
    from meter2cash.mdm.vee.work_queue import get_exception

    with platform() as p, p.sessions() as session:
        e = get_exception(session, exception_id)
    console.print_json(data=e)


@exceptions_app.command("assign")
def exceptions_assign(
    exception_id: int = typer.Argument(...),
    to: str = typer.Option(..., "--to", help="Who works on it"),
    actor: str = typer.Option("cli", help="Who assigns it"),
) -> None:
    """Give an exception to a person."""
    from meter2cash.mdm.vee.work_queue import assign

    with platform() as p, transaction(p.sessions) as session:
        out = assign(session, exception_id, to, actor=actor)
    console.print(f"exception {out['id']} assigned to {out['assignee']}")


@exceptions_app.command("comment")
def exceptions_comment(
    exception_id: int = typer.Argument(...),
    text: str = typer.Argument(...),
    author: str = typer.Option("cli"),
) -> None:
    """Add a comment."""
    from meter2cash.mdm.vee.work_queue import comment

    with platform() as p, transaction(p.sessions) as session:
        comment(session, exception_id, text, author=author)
    console.print(f"comment added to exception {exception_id}")


@exceptions_app.command("resolve")
def exceptions_resolve(
    exception_id: int = typer.Argument(...),
    action: str = typer.Option(..., "--action", help="accept, edit, reread or estimate"),
    value: list[str] = typer.Option([], "--value", help="SLOT=VALUE for edit (repeatable)"),
    reason: str = typer.Option("", "--reason"),
    actor: str = typer.Option("cli"),
) -> None:
    """Resolve an exception: accept, edit values with a reason, request a re-read, or estimate."""
    from meter2cash.mdm.vee.work_queue import resolve

    values: dict[int, float] = {}
    for item in value:
        slot, _, v = item.partition("=")
        try:
            values[int(slot)] = float(v)
        except ValueError:
            err_console.print(f"[red]error[/red] vee.edit_value_invalid: {item!r} is not SLOT=VALUE")
            raise typer.Exit(2) from None
    with platform() as p, transaction(p.sessions) as session:
        out = resolve(session, exception_id, action, actor=actor, reason=reason, values=values)
    console.print(f"exception {out['id']}: {out['status']} ({out['resolution']})")
