"""``m2c ingest``: load reading files; ``m2c reading-limits``: the plausibility limits of readings."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from meter2cash.cli.common import console, platform
from meter2cash.db import transaction
from meter2cash.mdm.ingest import IngestResult, ingest_paths

SHOWN_PROBLEMS = 20


def _status(r: IngestResult) -> Text:
    if r.error:
        return Text(r.error["code"], style="red")
    if r.duplicate_file:
        return Text("already ingested", style="yellow")
    if r.rows_rejected:
        return Text("rejected rows", style="red")
    return Text("ok", style="green")


def _counts(r: IngestResult) -> tuple[int, int, int, int, int]:
    """Rows accepted and rejected; values new, duplicate (received before, this file included)
    and changed, over intervals, registers and events."""
    new = r.intervals_new + r.registers - r.registers_changed + r.events
    dup = r.intervals_duplicate + r.registers_duplicate + r.events_duplicate + r.rows_already_accepted
    changed = r.intervals_changed + r.registers_changed
    return r.rows_accepted, r.rows_rejected, new, dup, changed


def _table(results: list[IngestResult]) -> Table:
    """One line per file; fits 80 columns (numbers never wrap, the file name folds)."""
    table = Table(title="Ingested files", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("file", overflow="fold", min_width=8)
    for name in ("accepted", "rejected", "new", "dup", "changed"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("status", overflow="fold")
    for r in results:
        table.add_row(Path(r.filename).name, *(f"{n:,}" for n in _counts(r)), _status(r))
    sums = [sum(c) for c in zip(*(_counts(r) for r in results), strict=True)] if results else [0] * 5
    dup = sum(r.duplicate_file for r in results)
    table.add_row("total", *(f"{n:,}" for n in sums), f"{dup} already ingested" if dup else "", style="bold")
    return table


def ingest(
    files: list[Path] = typer.Argument(..., help="CSV or JSON reading files", exists=True, dir_okay=False),
    source: str = typer.Option("", "--source", help="name of the sender (HES, file drop…)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Ingest reading files (CSV or JSON). Exit 0: all accepted (or already ingested); 1: some
    rows rejected (listed; the others stored); 2: a file could not be read at all."""
    sizes = {f: f.stat().st_size for f in files}
    with platform() as p:
        if as_json:
            results = ingest_paths(p.sessions, files, source=source)
        else:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DownloadColumn(),
                console=console, transient=True,
            ) as progress:  # fmt: skip
                files_task = progress.add_task("files", total=len(files))
                bytes_task = progress.add_task("bytes", total=sum(sizes.values()))

                def advance(path: Path, _result: IngestResult) -> None:
                    progress.advance(files_task)
                    progress.advance(bytes_task, sizes.get(path, 0))

                results = ingest_paths(p.sessions, files, source=source, on_progress=advance)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], default=str, indent=2))
    else:
        console.print(_table(results))
        _print_problems(results)
    if any(r.error for r in results):
        raise typer.Exit(2)
    if any(r.rows_rejected for r in results):
        raise typer.Exit(1)


def _print_problems(results: list[IngestResult]) -> None:
    for r in results:
        if r.error:
            console.print(
                f"error {Path(r.filename).name}: {r.error['code']}: {r.error['message']}",
                markup=False,
                highlight=False,
            )
    listed = [(r, p) for r in results for p in r.problems]
    if not listed:
        return
    table = Table(
        title=f"Problems (first {min(len(listed), SHOWN_PROBLEMS)} of {len(listed)})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("where", overflow="fold")
    table.add_column("field", overflow="fold")
    table.add_column("code", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=1)
    for r, prob in listed[:SHOWN_PROBLEMS]:
        where = f"{Path(r.filename).name}:{prob.line}" if prob.line is not None else Path(r.filename).name
        table.add_row(where, prob.field or "", prob.code, Text(prob.message))
    console.print(table)


limits_app = typer.Typer(
    help="Plausibility limits of readings: values outside them are refused at ingest.",
    no_args_is_help=True,
)


@limits_app.command("show")
def limits_show() -> None:
    """The limits in force: their version and the range of every reading type."""
    from sqlalchemy import select

    from meter2cash.mdm.models import ReadingType
    from meter2cash.mdm.reading_limits import current_limits

    with platform() as p, p.sessions() as session:
        limits = current_limits(session)
        types = session.execute(
            select(
                ReadingType.code, ReadingType.unit, ReadingType.interval_s, ReadingType.accumulation
            ).order_by(ReadingType.code)
        ).all()
    console.print(
        f"reading limits version {limits.version}" + (f": {limits.description}" if limits.description else "")
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("reading type", overflow="fold")
    table.add_column("unit", no_wrap=True)
    table.add_column("min", justify="right", no_wrap=True)
    table.add_column("max", justify="right", no_wrap=True)
    table.add_column("from", no_wrap=True)
    for code, unit, interval_s, acc in types:
        lo, hi = limits.bounds(code, unit, interval_s, acc)
        table.add_row(code, unit, f"{lo:g}", f"{hi:g}", "file" if code in limits.reading_types else "default")
    console.print(table)


@limits_app.command("load")
def limits_load(
    file: Path = typer.Argument(..., help="limits TOML file (docs/formats.md)", exists=True, dir_okay=False),
    actor: str = typer.Option("cli", help="who loads it (audit)"),
) -> None:
    """Validate a limits file and store it as the version in force (audited)."""
    from meter2cash.mdm.reading_limits import parse_limits, put_limits

    limits = parse_limits(file.read_bytes(), source=str(file))
    with platform() as p, transaction(p.sessions) as session:
        stored = put_limits(session, limits, actor=actor)
    if stored:
        console.print(f"reading limits version {limits.version} is in force")
    else:
        console.print(f"reading limits version {limits.version} is in force already; nothing changed")
