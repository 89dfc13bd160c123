"""``m2c ingest``: load reading files."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from meter2cash.cli.common import console, platform
from meter2cash.mdm.ingest import IngestResult, ingest_paths

SHOWN_PROBLEMS = 20
_COUNTS = ("rows_total", "rows_accepted", "intervals_new", "intervals_duplicate", "intervals_changed",
           "rows_rejected")  # fmt: skip


def _status(r: IngestResult) -> str:
    if r.error:
        return f"[red]{r.error['code']}[/red]"
    if r.duplicate_file:
        return "[yellow]already ingested[/yellow]"
    return "[red]rejected rows[/red]" if r.rows_rejected else "[green]ok[/green]"


def _table(results: list[IngestResult]) -> Table:
    table = Table(title="Ingested files")
    table.add_column("file")
    for name in ("rows", "accepted", "new", "duplicate", "changed", "rejected"):
        table.add_column(name, justify="right")
    table.add_column("registers", justify="right")
    table.add_column("events", justify="right")
    table.add_column("status")
    for r in results:
        counts = [f"{getattr(r, c):,}" for c in _COUNTS]
        table.add_row(Path(r.filename).name, *counts, f"{r.registers:,}", f"{r.events:,}", _status(r))
    total = [f"{sum(getattr(r, c) for r in results):,}" for c in _COUNTS]
    dup = sum(r.duplicate_file for r in results)
    table.add_row(
        "[bold]total[/bold]",
        *total,
        f"{sum(r.registers for r in results):,}",
        f"{sum(r.events for r in results):,}",
        f"{dup} already ingested" if dup else "",
        end_section=True,
    )
    return table


def ingest(
    files: list[Path] = typer.Argument(..., help="CSV or JSON reading files", exists=True, dir_okay=False),
    source: str = typer.Option("", "--source", help="name of the sender (HES, file drop…)"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Ingest reading files (CSV or JSON). Exit 0: all accepted; 1: some rows rejected; 2: a file failed."""
    sizes = {f: f.stat().st_size for f in files}
    with platform() as p:
        if as_json:
            results = ingest_paths(p, files, source=source)
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

                results = ingest_paths(p, files, source=source, on_progress=advance)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results], default=str))
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
                f"[red]error[/red] {Path(r.filename).name}: {r.error['code']}: {r.error['message']}"
            )
    listed = [(r, p) for r in results for p in r.problems]
    if not listed:
        return
    table = Table(title=f"Problems (first {min(len(listed), SHOWN_PROBLEMS)} of {len(listed)})")
    for name in ("where", "field", "code", "message"):
        table.add_column(name)
    for r, prob in listed[:SHOWN_PROBLEMS]:
        where = f"{Path(r.filename).name}:{prob.line}" if prob.line is not None else Path(r.filename).name
        table.add_row(where, prob.field or "", prob.code, prob.message)
    console.print(table)
