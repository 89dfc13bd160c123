"""``m2c masterdata``: load and export master data bundles."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from sqlalchemy import func, select

from meter2cash.cli.common import console, platform, reading
from meter2cash.cli.render import Num, print_json, table
from meter2cash.integration.masterdata import export_bundle, load_bundle_path
from meter2cash.integration.masterdata_loader import LoadResult
from meter2cash.integration.masterdata_spec import ENTITIES

app = typer.Typer(
    help="Master data: people, accounts, premises, service points, meters.", no_args_is_help=True
)


def _print_result(result: LoadResult) -> None:
    out = table(
        "master data loaded", "entity", Num("created"), Num("updated"), Num("unchanged"), Num("rejected")
    )
    for name, c in result.counts.items():
        style = "red" if c.rejected else None
        out.add_row(
            name, f"{c.created:,}", f"{c.updated:,}", f"{c.unchanged:,}", f"{c.rejected:,}", style=style
        )
    console.print(out)
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
        with reading(path):
            result = load_bundle_path(session, path, actor="cli")
        session.commit()
    if as_json:
        print_json(result.to_dict())
    else:
        _print_result(result)
    if result.rejected:
        raise typer.Exit(1)


@app.command("export")
def export(
    path: Path = typer.Argument(..., help="JSON file to write"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Write every master-data record as a bundle (loading it back changes nothing)."""
    with platform() as p, p.sessions() as session:
        bundle = export_bundle(session)
    path.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {name: len(v) for name, v in bundle.items()}
    if as_json:
        print_json({"file": str(path), "records": sum(counts.values()), "by_entity": counts})
    else:
        console.print(f"exported {sum(counts.values())} records to {escape(str(path))}", highlight=False)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
    """Counts per entity and the network hierarchy: feeder → transformer → service points."""
    from meter2cash.cis.parties.models import ServicePoint
    from meter2cash.mdm.models import DistributionTransformer, Feeder

    with platform() as p, p.sessions() as session:
        counts = {
            spec.name: session.scalar(select(func.count()).select_from(spec.model)) or 0 for spec in ENTITIES
        }
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
    network = [
        {
            "feeder": feeder,
            "transformer": dt,
            "capacity_kva": None if kva is None else f"{kva.normalize():f}",
            "service_points": n or 0,
        }
        for feeder, dt, kva, n in rows
    ]
    if as_json:
        print_json({"records": counts, "network": network, "without_transformer": orphans or 0})
        return
    out = table("master data", "entity", Num("records"))
    for name, n in counts.items():
        out.add_row(name, f"{n:,}")
    console.print(out)
    tree = table("network hierarchy", "feeder", "transformer", Num("capacity kVA"), Num("service points"))
    for row in network:
        tree.add_row(
            row["feeder"] or "-", row["transformer"], row["capacity_kva"] or "", f"{row['service_points']:,}"
        )
    if orphans:
        tree.add_row("-", "(no transformer)", "", f"{orphans:,}")
    console.print(tree)
