"""Bulk inserts: ``COPY … FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere.

Values go through each column type's own bind conversion (exact scaled integers for money, JSON
text for JSON columns), so a row inserted here reads back exactly as an ORM insert would.
Runs in the caller's transaction; does not commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import JSON, ColumnDefault, Table, insert, text
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

#: Below this many rows a plain executemany is as fast.
COPY_MIN_ROWS = 2000


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, separators=(",", ":"))


def reserve_ids(session: Session, table: Table, n: int) -> list[int] | None:
    """``n`` new ids from the PostgreSQL sequence of ``table.id`` (so rows can be copied with
    their ids known beforehand); ``None`` on other databases."""
    if session.connection().dialect.name != "postgresql":
        return None
    stmt = text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)")
    return [int(i) for i in session.scalars(stmt, {"n": n})]


def _defaults(table: Table, given: list[str]) -> list[tuple[str, Callable[[], Any]]]:
    """The client-side column defaults a ``COPY`` would skip (SQLAlchemy applies them on
    ``INSERT`` only): per missing column, a function giving its value."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for col in table.c:
        d = col.default
        if col.name in given or d is None or not isinstance(d, ColumnDefault):
            continue
        arg = d.arg
        out.append((col.name, partial(arg, None) if d.is_callable else partial(lambda v: v, arg)))
    return out


def _converter(typ: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The bind conversion of a column type (scaled decimals, UTC datetimes, JSON text)."""
    if isinstance(typ, TypeDecorator):
        return partial(typ.process_bind_param, dialect=dialect)
    if isinstance(typ, JSON):
        return _json
    return None


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, copy_min_rows: int = COPY_MIN_ROWS
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``; missing columns get their
    defaults. ``COPY`` is used on PostgreSQL from ``copy_min_rows`` rows on."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql" or len(rows) < copy_min_rows:
        session.execute(insert(table), list(rows))
        return
    given = list(rows[0])
    n = len(rows)
    columns: list[list[Any]] = []  # converted column by column: one type dispatch per column
    for c in given:
        col = [r[c] for r in rows]
        conv = _converter(table.c[c].type, dialect)
        columns.append(col if conv is None else [None if v is None else conv(v) for v in col])
    fill = _defaults(table, given)
    for c, f in fill:
        conv = _converter(table.c[c].type, dialect)
        columns.append([f() if conv is None else conv(f()) for _ in range(n)])
    names = ", ".join(f'"{c}"' for c in [*given, *(c for c, _ in fill)])
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in zip(*columns, strict=True):
            copy.write_row(row)
