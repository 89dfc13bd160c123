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

from sqlalchemy import JSON, Table, insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

#: Below this many rows a plain executemany is as fast.
COPY_MIN_ROWS = 2000


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, separators=(",", ":"))


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        session.execute(insert(table), list(rows))
        return
    cols = list(rows[0])
    convert: list[Callable[[Any], Any] | None] = []
    for c in cols:
        typ = table.c[c].type
        if isinstance(typ, TypeDecorator):
            convert.append(partial(typ.process_bind_param, dialect=dialect))
        elif isinstance(typ, JSON):
            convert.append(_json)
        else:
            convert.append(None)
    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in cols)
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for r in rows:
            copy.write_row(
                [v if f is None else f(v) for f, v in zip(convert, (r[c] for c in cols), strict=True)]
            )
