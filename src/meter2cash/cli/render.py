"""Output of the CLI: tables that fit the terminal, money in minor units, JSON for machines.

Tables fit 80 columns: text columns wrap (long words fold, nothing is cut), number columns
never wrap, so a number is never shortened to ``3,17…``. ``--json`` prints plain JSON (money and
quantities as decimal strings) on stdout, without colours, for scripts.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from meter2cash.core.money import format_money


class Num(str):
    """A column header whose cells are numbers: right-aligned, never wrapped or cut."""

    __slots__ = ()


class Key(str):
    """A column header whose cells are identifiers (bill numbers, dates): never wrapped or cut."""

    __slots__ = ()


#: Narrowest a text column is made before the layout changes (long words fold, none is cut).
MIN_TEXT = 10


class Report:
    """A table that fits the width it is printed in, whatever its numbers.

    Tried in turn: a boxed table; the same without the box; then each of those again without the
    ``optional`` columns (dropped in the order given); at last one block of ``header  value``
    lines per row. Text columns wrap, down to :data:`MIN_TEXT` or their ``min_width``;
    :class:`Num` and :class:`Key` columns never wrap and are never cut.
    """

    def __init__(
        self,
        title: str | None,
        *columns: str,
        caption: str | None = None,
        optional: tuple[str, ...] = (),
        min_width: dict[str, int] | None = None,
    ) -> None:
        self.title = title
        self.columns = columns
        self.caption = caption
        self.optional = optional
        self.min_width = min_width or {}
        self.rows: list[tuple[tuple[Text, ...], str | None, bool]] = []

    def add_row(self, *cells: str | Text, style: str | None = None, end_section: bool = False) -> None:
        """A row of plain text cells (no markup is read from them; give a ``Text`` for styles)."""
        self.rows.append((tuple(c if isinstance(c, Text) else Text(c) for c in cells), style, end_section))

    def _natural(self, i: int) -> int:
        """The widest line of column ``i``, header included."""
        texts = [self.columns[i], *(r[0][i].plain for r in self.rows if i < len(r[0]))]
        return max(cell_len(line) for t in texts for line in (t.split("\n") or [""]))

    def _least(self, i: int) -> int:
        """The narrowest column ``i`` may be: numbers and keys whole, text down to :data:`MIN_TEXT`
        (or its ``min_width``)."""
        col = self.columns[i]
        natural = self._natural(i)
        return natural if isinstance(col, Num | Key) else min(natural, self.min_width.get(col, MIN_TEXT))

    def _text_widths(self, keep: list[int], room: int) -> dict[int, int]:
        """Widths of the text columns among ``keep`` sharing ``room`` cells (none when their
        natural widths fit): each its least, the rest shared out, the smallest needs met first."""
        text = [i for i in keep if not isinstance(self.columns[i], Num | Key)]
        natural = {i: self._natural(i) for i in text}
        if sum(natural.values()) <= room:
            return {}
        widths = {i: self._least(i) for i in text}
        left = room - sum(widths.values())
        order = sorted(text, key=lambda k: natural[k] - widths[k])  # water-filling: small needs first
        for k, i in enumerate(order):
            add = min(natural[i] - widths[i], left // (len(order) - k))
            widths[i] += add
            left -= add
        for i in reversed(order):
            add = min(natural[i] - widths[i], left)
            widths[i] += add
            left -= add
        return widths

    def _table(self, keep: list[int], compact: bool, width: int) -> Table:
        kw: dict[str, Any] = (
            {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True}
            if compact
            else {}
        )
        n = len(keep)
        chrome = 2 * (n - 1) if compact else 3 * n + 1
        fixed = sum(self._natural(i) for i in keep if isinstance(self.columns[i], Num | Key))
        widths = self._text_widths(keep, width - chrome - fixed)
        title = Text(self.title, style="table.title") if self.title else None
        out = Table(title=title, caption=self.caption, **kw)
        for i in keep:
            col = self.columns[i]
            if isinstance(col, Num):
                out.add_column(str(col), justify="right", no_wrap=True)
            elif isinstance(col, Key):
                out.add_column(str(col), no_wrap=True)
            else:
                out.add_column(col, overflow="fold", width=widths.get(i))
        for cells, style, end_section in self.rows:
            out.add_row(*(cells[i] for i in keep if i < len(cells)), style=style, end_section=end_section)
        return out

    def _records(self) -> Group:
        parts: list[Any] = [Text(self.title, style="table.title")] if self.title else []
        for cells, style, _ in self.rows:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(overflow="fold")
            for col, cell in zip(self.columns, cells, strict=False):
                if cell.plain:
                    grid.add_row(str(col), cell, style=style)
            parts.extend([Text(""), grid])
        if self.caption:
            parts.append(Text(self.caption))
        return Group(*parts)

    def layout(self, width: int) -> Table | Group:
        """The renderable that fits ``width`` columns."""
        keep = list(range(len(self.columns)))
        dropping = [self.columns.index(c) for c in self.optional if c in self.columns]
        while True:
            need, n = sum(self._least(i) for i in keep), len(keep)
            if need + 3 * n + 1 <= width:
                return self._table(keep, False, width)
            if need + 2 * (n - 1) <= width:
                return self._table(keep, True, width)
            if not dropping:
                return self._records()
            keep.remove(dropping.pop(0))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(options.max_width)


def table(
    title: str | None,
    *columns: str,
    caption: str | None = None,
    optional: tuple[str, ...] = (),
    min_width: dict[str, int] | None = None,
) -> Report:
    """A :class:`Report` with ``columns``; a :class:`Num` header makes a number column, a
    :class:`Key` header an identifier column; ``optional`` columns may be left out to fit."""
    return Report(title, *columns, caption=caption, optional=optional, min_width=min_width)


def exact_amount(value: Decimal | str | None) -> str:
    """An amount exactly as stored, grouped, with at least two decimals: ``16,266.7625``,
    ``3,500.00`` (bill lines may carry more places than the currency's minor unit)."""
    if value is None or value == "":
        return ""
    text = f"{Decimal(value).normalize():,f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def money(amount: Decimal | str | int | None, currency: str, *, grouped: bool = True) -> str:
    """``amount`` in the currency's minor units: ``1,532.73`` (``""`` for ``None``)."""
    if amount is None or amount == "":
        return ""
    return format_money(Decimal(amount), currency, grouped=grouped)


def quantity(value: Decimal | str | int | None, *, grouped: bool = False) -> str:
    """A quantity without trailing zeros: ``12.5`` for ``12.5000`` (``""`` for ``None``)."""
    if value is None or value == "":
        return ""
    d = Decimal(value).normalize()
    if d == d.to_integral_value():
        d = d.quantize(Decimal(1))
    return f"{d:,f}" if grouped else f"{d:f}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (Decimals as decimal strings, dates ISO 8601)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_plain))


def summary_table(title: str, data: dict[str, Any], currency: str) -> Report:
    """A two-column table of a result's counts and amounts: ``*amount`` keys in the currency's
    minor units, counts grouped, nested counts (``errors: {code: n}``) one row each."""
    out = table(title, "", Num(""))
    for key, value in data.items():
        label = key.replace("_", " ")
        if isinstance(value, dict):
            for sub, n in value.items():
                out.add_row(f"{label}: {sub}", _cell(sub, n, currency))
            if not value:
                out.add_row(label, "0")
        else:
            out.add_row(label, _cell(key, value, currency))
    return out


def _cell(key: str, value: Any, currency: str) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if key.endswith("amount") or key in ("total", "balance"):
        return f"{currency} {money(value, currency)}"
    if key.endswith("kwh"):
        return quantity(value, grouped=True)
    return str(value)
