"""Bill lines straight from the rating arrays, without a Decimal object per bill.

:func:`line_columns` lays every present line of every bill out as flat NumPy columns (bill,
seq, line, choice, quantity, amount) in bill order; :func:`line_rows` turns them into rows for a
bulk insert, making one ``Decimal`` per *distinct* amount and quantity (they repeat a lot across
a fleet) instead of one per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.cis.rating.scaled import QTY_PLACES
from meter2cash.cis.rating.types import RatedArrays

I64 = npt.NDArray[np.int64]
NO_QTY = np.iinfo(np.int64).min
#: Decimal places of stored money (``meter2cash.db.Money``).
MONEY_PLACES = 4


@dataclass(slots=True)
class LineColumns:
    """Every present line: ``bill`` index (0..n-1), ``seq`` within the bill (1-based), ``line``
    (index into ``RatedArrays.lines``), ``choice`` (description/rate variant), ``quantity``
    [10⁻³ unit, ``NO_QTY`` if none] and ``amount`` [10^-scale currency]."""

    bill: I64
    seq: I64
    line: I64
    choice: I64
    quantity: I64
    amount: I64


def line_columns(rated: RatedArrays) -> LineColumns:
    """Flatten the present lines of all bills, ordered by bill then line (vectorised)."""
    parts: list[tuple[I64, ...]] = []
    for li, ln in enumerate(rated.lines):
        idx = np.flatnonzero(ln.present)
        choice = np.zeros(idx.size, np.int64) if ln.choice is None else ln.choice[idx]
        qty = np.full(idx.size, NO_QTY, np.int64) if ln.quantity is None else ln.quantity[idx]
        parts.append((idx.astype(np.int64), np.full(idx.size, li, np.int64), choice, qty, ln.amount[idx]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return LineColumns(empty, empty, empty, empty, empty, empty)
    bill, line, choice, qty, amount = (np.concatenate([p[k] for p in parts]) for k in range(5))
    order = np.lexsort((line, bill))
    bill, line, choice, qty, amount = bill[order], line[order], choice[order], qty[order], amount[order]
    starts = np.flatnonzero(np.r_[True, bill[1:] != bill[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, bill.size]))
    seq = np.arange(bill.size, dtype=np.int64) - first + 1
    return LineColumns(bill, seq, line, choice, qty, amount)


#: Column order of the rows :func:`line_rows` returns (the ``bill_line`` table's columns).
LINE_FIELDS = (
    "bill_id", "seq", "component", "description", "quantity",
    "unit", "rate", "amount", "ledger_account", "segment",
)  # fmt: skip


def _decimals(values: I64, places: int) -> npt.NDArray[np.object_]:
    """One Decimal per distinct value, fanned out by fancy indexing (``None`` for ``NO_QTY``)."""
    uniq, inverse = np.unique(values, return_inverse=True)
    table = np.empty(uniq.size, dtype=object)
    table[:] = [None if u == NO_QTY else Decimal(int(u)).scaleb(-places) for u in uniq.tolist()]
    return table[inverse]


def line_rows(
    rated: RatedArrays, bill_ids: list[int] | I64, *, stored: bool = False
) -> list[tuple[Any, ...]]:
    """``bill_line`` rows (tuples in :data:`LINE_FIELDS` order) for a bulk insert or COPY;
    ``bill_ids[i]`` is the stored id of bill ``i``. Columns are built with NumPy fancy indexing
    over small tables of distinct values; only prorated lines get a per-bill description.

    ``stored=True`` gives quantity, rate and amount as the database stores them (scaled
    integers of 10⁻³, 10⁻⁶ and 10⁻⁴: :data:`meter2cash.db.Quantity`, ``Rate``, ``Money``), for a
    raw insert or COPY without a Decimal per line; otherwise Decimals."""
    return list(zip(*line_table(rated, bill_ids, stored=stored).values(), strict=True))


def line_table(
    rated: RatedArrays, bill_ids: list[int] | I64, *, stored: bool = False, skip_negative: bool = False
) -> dict[str, list[Any]]:
    """The rows of :func:`line_rows` column-wise (:data:`LINE_FIELDS` → values). With
    ``skip_negative``, the lines of bills whose id is negative are left out."""
    cols = line_columns(rated)
    if skip_negative:
        keep = np.asarray(bill_ids, dtype=np.int64)[cols.bill] >= 0
        if not keep.all():
            c = cols
            cols = LineColumns(
                c.bill[keep], c.seq[keep], c.line[keep], c.choice[keep], c.quantity[keep], c.amount[keep]
            )
    ids = np.asarray(bill_ids, dtype=np.int64)[cols.bill]
    variants = [(li, c) for li, ln in enumerate(rated.lines) for c in range(len(ln.descriptions))]
    code_of = {v: k for k, v in enumerate(variants)}
    offsets = np.asarray([code_of[(li, 0)] for li in range(len(rated.lines))], dtype=np.int64)
    code = offsets[cols.line] + cols.choice

    def table(values: list[Any]) -> npt.NDArray[np.object_]:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out[code]

    lines = rated.lines
    comp = table([lines[li].component for li, _ in variants])
    desc = table([lines[li].descriptions[c] for li, c in variants])
    unit = table([lines[li].unit for li, _ in variants])
    rates = [lines[li].rates[c] for li, c in variants]
    rate = table([None if r is None else int(r.scaleb(6)) for r in rates] if stored else rates)
    acct = table([lines[li].ledger_account for li, _ in variants])
    prorated = np.asarray([ln.prorated for ln in lines], dtype=bool)[cols.line]
    days_in, days_act = rated.inputs.days_in_period[cols.bill], rated.inputs.days_active[cols.bill]
    for k in np.flatnonzero(prorated & (days_in != days_act)).tolist():
        desc[k] = f"{desc[k]} ({days_act[k]}/{days_in[k]} days)"
    seg = np.ones(ids.size, dtype=np.int64)
    if stored:
        qty: list[Any] = np.where(cols.quantity == NO_QTY, 0, cols.quantity).tolist()
        for k in np.flatnonzero(cols.quantity == NO_QTY).tolist():
            qty[k] = None
        amount = (cols.amount * 10 ** (MONEY_PLACES - rated.scale)).tolist()
    else:
        qty = _decimals(cols.quantity, QTY_PLACES).tolist()
        amount = _decimals(cols.amount, rated.scale).tolist()
    values = (
        ids.tolist(), cols.seq.tolist(), comp.tolist(), desc.tolist(), qty, unit.tolist(),
        rate.tolist(), amount, acct.tolist(), seg.tolist(),
    )  # fmt: skip
    return dict(zip(LINE_FIELDS, values, strict=True))
