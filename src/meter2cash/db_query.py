"""Query helpers shared by services: id filters for long id lists and exact scaled-integer columns
read raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    any_,
    bindparam,
    cast,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

#: Ids per IN list where a database takes no array parameter, and rows per statement of the
#: reads and writes that go in chunks: well under SQLite's limit of bound parameters.
CHUNK = 2000


def id_filters(session: Session, column: Any, ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """``column`` in ``ids`` as WHERE clauses, one per query to run (none for no ids). On
    PostgreSQL one array parameter (``column = ANY(:ids)``): a single bound value however many
    ids, where an IN list expands into a parameter per id when the statement is executed and
    costs Python time per id; elsewhere IN lists of at most ``CHUNK`` ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # The array's text, untyped and cast to integer[] in the statement: PostgreSQL folds it
        # into a constant when planning (so a scan hashes it), and Python makes it in one join.
        # A list would be adapted element by element, as smallint[] for small ids: a cross-type
        # comparison PostgreSQL neither hashes nor matches to the index (measured 100x slower).
        array = "{" + ",".join(map(str, ids)) + "}"
        return [column == any_(cast(bindparam(None, array, type_=NullType()), ARRAY(Integer)))]
    return [column.in_(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


class ScaledValues(dict[int, Decimal]):
    """Stored scaled integers (see :class:`meter2cash.db.ScaledDecimal`) → ``Decimal``, each
    distinct value converted once: a fleet shares a few loads, so a bill run reading thousands
    of agreements makes a few Decimals instead of one per row."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = -scale

    def __missing__(self, raw: int) -> Decimal:
        value = self[raw] = Decimal(raw).scaleb(self.scale)
        return value

    def get_or_none(self, raw: int | None) -> Decimal | None:
        return None if raw is None else self[raw]


def raw(column: Any) -> Any:
    """A :class:`~meter2cash.db.ScaledDecimal` column (money, loads) read as the integer it stores
    (``10**-scale`` units) instead of a ``Decimal``. SQL sums and comparisons over it are exact
    integer arithmetic on SQLite and PostgreSQL alike, and reading many rows makes no ``Decimal``
    per row: the caller converts the few values it keeps (:class:`ScaledValues`)."""
    return type_coerce(column, BigInteger)
