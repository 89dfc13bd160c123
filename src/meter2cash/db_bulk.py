"""Bulk inserts: ``COPY … FROM STDIN`` on PostgreSQL, ``executemany`` elsewhere.

Values go through each column type's own bind conversion (exact scaled integers for money, JSON
text for JSON columns), so a row inserted here reads back exactly as an ORM insert would. Callers
holding money as scaled integers already (the rating arrays) name those columns ``scaled`` and
skip the ``Decimal`` round trip. The ``COPY`` data is formatted column by column into text
blocks (psycopg's text format: ``\\N`` for NULL, backslash escapes) rather than row by row.
Runs in the caller's transaction; does not commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache, partial
from itertools import repeat
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Column, ColumnDefault, MetaData, Table, insert, text
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from meter2cash.db import ScaledDecimal

#: Below this many rows a plain executemany is as fast.
COPY_MIN_ROWS = 2000
#: Rows per text block written to a ``COPY`` (bounds the memory of one block).
_BLOCK_ROWS = 5000


def json_text(v: Any) -> str | None:
    """Compact JSON text of a JSON column's value (``None`` for SQL NULL): orjson, whose text
    keeps non-ASCII characters as UTF-8 and parses back to the same value as ``json.dumps``'s;
    what orjson refuses (non-string keys, NumPy scalars, integers beyond 64 bits…) goes through
    ``json.dumps``. Non-finite floats become ``null`` (PostgreSQL's json refuses ``NaN``)."""
    if v is None:
        return None
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return json.dumps(v, separators=(",", ":"))


def reserve_ids(session: Session, table: Table, n: int) -> list[int] | None:
    """``n`` new ids from the PostgreSQL sequence of ``table.id`` (so rows can be copied with
    their ids known beforehand), ascending; ``None`` on other databases."""
    if session.connection().dialect.name != "postgresql":
        return None
    if n <= 0:
        return []
    stmt = text(
        f"SELECT array(SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) AS i"
        " FROM generate_series(1, :n) ORDER BY i)"
    )
    return list(session.scalar(stmt, {"n": n}))


def _defaults(table: Table, given: Collection[str]) -> list[tuple[str, Callable[[], Any]]]:
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
        return json_text
    return None


def raw_table(table: Table, scaled: Collection[str]) -> Table:
    """``table`` with its ``scaled`` columns (``ScaledDecimal``) typed as the integers they are
    stored as, for inserting scaled integers as they are; other columns and defaults unchanged."""
    return _raw_table(table, frozenset(scaled))


@cache
def _raw_table(table: Table, scaled: frozenset[str]) -> Table:
    return Table(
        table.name,
        MetaData(),
        *(
            Column(
                c.name,
                BigInteger if c.name in scaled and isinstance(c.type, ScaledDecimal) else c.type,
                primary_key=c.primary_key,
                default=c.default.arg if isinstance(c.default, ColumnDefault) else None,
            )
            for c in table.c
        ),
    )


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    copy_min_rows: int = COPY_MIN_ROWS,
    scaled: Collection[str] = (),
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``; missing columns get their
    defaults. ``COPY`` is used on PostgreSQL from ``copy_min_rows`` rows on. Columns named in
    ``scaled`` hold the scaled integers a ``ScaledDecimal`` column stores."""
    if not rows:
        return
    given = list(rows[0])
    insert_columns(
        session, table, {c: [r[c] for r in rows] for c in given}, copy_min_rows=copy_min_rows, scaled=scaled
    )


def insert_columns(
    session: Session,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    same: Mapping[str, Any] | None = None,
    copy_min_rows: int = COPY_MIN_ROWS,
    scaled: Collection[str] = (),
) -> None:
    """Insert rows given column-wise (``columns``: name → values, all of one length; ``same``:
    name → the value of every row); missing columns get their defaults. ``COPY`` is used on
    PostgreSQL from ``copy_min_rows`` rows on, executemany otherwise. Columns named in ``scaled``
    hold the scaled integers a ``ScaledDecimal`` column stores (no ``Decimal`` round trip)."""
    same = dict(same or {})
    n = len(next(iter(columns.values()))) if columns else 0
    if not n:
        return
    conn = session.connection()
    dialect = conn.dialect
    scaled = frozenset(scaled)
    if dialect.name != "postgresql" or n < copy_min_rows:
        raw = raw_table(table, scaled) if scaled else table
        session.execute(insert(raw), column_rows(columns, same))
        return
    given = {**columns, **same}
    names: list[str] = []
    values: list[Any] = []  # per column, converted: a list of n values, or one value for every row
    for c, vals in given.items():
        conv = None if c in scaled else _converter(table.c[c].type, dialect)
        names.append(c)
        if c in same:
            values.append(_Same(vals if conv is None or vals is None else conv(vals)))
        else:
            values.append(vals if conv is None else [None if v is None else conv(v) for v in vals])
    for c, f in _defaults(table, list(given)):
        conv = _converter(table.c[c].type, dialect)
        v = f()
        names.append(c)
        values.append(_Same(v if conv is None or v is None else conv(v)))
    _copy(session, table.name, names, values, n)


def column_rows(
    columns: Mapping[str, Sequence[Any]], same: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows (dicts) of columns given column-wise, each with the ``same`` values too: for an
    executemany where no ``COPY`` is used."""
    same = same or {}
    n = len(next(iter(columns.values()))) if columns else 0
    keys = [*columns, *same]
    lists = [*columns.values(), *(repeat(v, n) for v in same.values())]
    return [dict(zip(keys, r, strict=True)) for r in zip(*lists, strict=True)]


class _Same:
    """The value of a column in every row."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _copy(session: Session, name: str, names: list[str], values: list[Any], n: int) -> None:
    """``COPY`` the columns ``values`` (lists, or :class:`_Same`) as text blocks; values of a type
    the text formatting does not know (enums, UUIDs, bytes…) go row by row through psycopg."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cols = ", ".join(f'"{c}"' for c in names)
    try:
        cells = [_cell(v.value) if isinstance(v, _Same) else _cells(v) for v in values]
    except TypeError:
        cells = None
    with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
        if cells is None:
            full = [repeat(v.value, n) if isinstance(v, _Same) else v for v in values]
            for row in zip(*full, strict=True):
                copy.write_row(row)
            return
        for lo in range(0, n, _BLOCK_ROWS):
            hi = min(n, lo + _BLOCK_ROWS)
            parts = [c[lo:hi] if isinstance(c, list) else repeat(c, hi - lo) for c in cells]
            copy.write("\n".join(map("\t".join, zip(*parts, strict=True))) + "\n")


#: COPY text escapes, as psycopg writes them.
_ESC = str.maketrans(
    {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}
)
_SPECIAL = ("\b", "\t", "\n", "\v", "\f", "\r", "\\")
_NULL = "\\N"


def _escape(s: str) -> str:
    return s.translate(_ESC) if any(ch in s for ch in _SPECIAL) else s


def _cell(v: Any) -> str:
    """One value in ``COPY`` text form (as psycopg's text dumpers write it)."""
    if v is None:
        return _NULL
    t = type(v)
    if t is str:
        return _escape(v)
    if t is bool:
        return "t" if v else "f"
    if t in _PLAIN:
        return str(v)
    raise TypeError(f"cannot COPY a {t.__name__} value")


def _cells(col: list[Any]) -> list[str]:
    """A column's values in ``COPY`` text form; the common homogeneous columns in one go."""
    kinds = set(map(type, col))
    if kinds <= _PLAIN:
        return list(map(str, col))
    if kinds <= _PLAIN_OR_NONE:
        return [_NULL if v is None else str(v) for v in col]
    if kinds == {bool}:
        return ["t" if v else "f" for v in col]
    if kinds <= {str, _NONE}:
        block = "".join(filter(None, col))
        if any(ch in block for ch in _SPECIAL):
            return [_cell(v) for v in col]
        return col if _NONE not in kinds else [_NULL if v is None else v for v in col]
    return [_cell(v) for v in col]


_NONE = type(None)
#: Types whose ``str`` is their ``COPY`` text (as psycopg's dumpers write them).
_PLAIN: set[type] = {int, float, date, datetime, Decimal}
_PLAIN_OR_NONE = {*_PLAIN, _NONE}
