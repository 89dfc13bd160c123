"""``m2c masterdata``: load and export master data bundles."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from meter2cash.cli.common import console, platform
from meter2cash.integration.masterdata import LoadResult, export_bundle, load_bundle_path
from meter2cash.integration.masterdata_spec import ENTITIES

app = typer.Typer(
    help="Master data: people, accounts, premises, service points, meters.", no_args_is_help=True
)


def _print_result(result: LoadResult) -> None:
    table = Table(title="master data loaded")
    for col in ("entity", "created", "updated", "unchanged", "rejected"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    for name, c in result.counts.items():
        style = "red" if c.rejected else None
        table.add_row(name, str(c.created), str(c.updated), str(c.unchanged), str(c.rejected), style=style)
    console.print(table)
    for p in result.problems:
        where = ":".join(str(x) for x in (p.source, p.line) if x is not None)
        col = f" [{p.field}]" if p.field else ""
        console.print(f"[red]{escape(where + col)}[/red] {p.code} {escape(p.message)}", highlight=False)


@app.command("load")
def load(
    path: Path = typer.Argument(..., help="bundle: a .json file, a directory of CSV files or a .zip"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Load (create or update) master data; good records are committed, bad ones listed.

    Exit code 1 when any record was rejected, 2 when the bundle could not be read at all.
    """
    with platform() as p, p.sessions() as session:
        result = load_bundle_path(session, path, actor="cli")
        session.commit()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)
    if result.rejected:
        raise typer.Exit(1)


@app.command("export")
def export(path: Path = typer.Argument(..., help="JSON file to write")) -> None:
    """Write every master-data record as a bundle (loading it back changes nothing)."""
    with platform() as p, p.sessions() as session:
        bundle = export_bundle(session)
    path.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(len(v) for v in bundle.values())
    console.print(f"exported {total} records to {path}")


@app.command("show")
def show() -> None:
    """Counts per entity and the network hierarchy: feeder → transformer → service points."""
    from meter2cash.cis.models import ServicePoint
    from meter2cash.mdm.models import DistributionTransformer, Feeder

    with platform() as p, p.sessions() as session:
        counts = Table(title="master data")
        counts.add_column("entity")
        counts.add_column("records", justify="right")
        for spec in ENTITIES:
            n = session.scalar(select(func.count()).select_from(spec.model)) or 0
            counts.add_row(spec.name, str(n))
        console.print(counts)
        sp_count = select(ServicePoint.dt_id, func.count().label("n")).group_by(ServicePoint.dt_id).subquery()
        rows = session.execute(
            select(
                Feeder.code, DistributionTransformer.code, DistributionTransformer.capacity_kva, sp_count.c.n
            )
            .select_from(DistributionTransformer)
            .outerjoin(Feeder, Feeder.id == DistributionTransformer.feeder_id)
            .outerjoin(sp_count, sp_count.c.dt_id == DistributionTransformer.id)
            .order_by(Feeder.code, DistributionTransformer.code)
        ).all()
        orphans = session.scalar(
            select(func.count()).select_from(ServicePoint).where(ServicePoint.dt_id.is_(None))
        )
    tree = Table(title="network hierarchy")
    for col in ("feeder", "transformer", "capacity kVA", "service points"):
        tree.add_column(col, justify="right" if col != "feeder" and col != "transformer" else "left")
    for feeder, dt, kva, n in rows:
        tree.add_row(feeder or "-", dt, "" if kva is None else f"{kva.normalize():f}", str(n or 0))
    if orphans:
        tree.add_row("-", "(no transformer)", "", str(orphans))
    console.print(tree)
