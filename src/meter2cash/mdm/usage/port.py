"""The usage port: what billing asks the MDM for, and what it gets back.

Billing, the daily prepaid charge and rebilling read usage through :class:`UsageSource` and
nothing else: no MDM table, no measurement store. A query names service points (one row each; a
service point appears once per segment of a split bill), the local days of each row, the
window they lie in, and how to measure: the TOU calendar that splits energy into periods, the
demand integration interval and whether gaps are estimated. The answer comes in batches of
rows, as arrays: bill determinants (energy by TOU period, maximum demand, data quality), energy
per local day, the kVAh and export totals where the meters measure them, the channel billed, the
meters used (after an exchange) and the data-version fingerprint a later correction changes.

Two implementations: :class:`meter2cash.mdm.usage.local.LocalUsage` over this platform's
measurement store, and :class:`meter2cash.mdm.usage.external.ExternalUsage` over determinants an
external MDM delivered (docs/formats.md#determinants). This module is pure: no database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.determinants import Determinants

if TYPE_CHECKING:
    from meter2cash.mdm.tou import TouCalendar

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Rows per batch unless the query says otherwise (bounds memory: rows × intervals × 8 B).
CHUNK_ROWS = 1000


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Usage of many rows over one window.

    ``service_point_ids`` and ``service_point_codes`` name each row's service point (ids for
    this platform's store, codes for an external MDM); ``first``/``last`` are the row's local
    days (inclusive) inside ``[start, end)`` (UTC, aware), the window every row of the query is
    read over. ``tou``: the calendar whose ``period_names`` split the energy (``None``: one
    period, ``period_names`` names it); ``demand_interval_s``: the demand integration period
    (``None``: the data's interval). ``estimate_gaps``: missing intervals inside a row's days
    are estimated by the row's mean (a bill on incomplete data is an estimated bill, not a low
    one); without it they count as 0 kWh (the daily prepaid charge charges what was measured).
    ``companions``: also give kVAh and export totals where the meters measure them;
    ``details``: also give each row's billed channel, the meters used and the data-version
    fingerprint (a bill records them; the daily prepaid charge needs none of them)."""

    service_point_ids: Sequence[int]
    service_point_codes: Sequence[str]
    first: Sequence[date]
    last: Sequence[date]
    start: datetime
    end: datetime
    tz: str
    tou: TouCalendar | None
    period_names: Sequence[str]
    demand_interval_s: int | None = None
    estimate_gaps: bool = True
    companions: bool = True
    details: bool = True
    chunk_rows: int = CHUNK_ROWS

    def __post_init__(self) -> None:
        n = len(self.service_point_ids)
        if not (len(self.service_point_codes) == len(self.first) == len(self.last) == n):
            raise ValueError("a usage query needs a code, a first and a last day for every service point")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a usage window is timezone-aware")

    @property
    def n_rows(self) -> int:
        return len(self.service_point_ids)


@dataclass(frozen=True, slots=True)
class UsageProblem:
    """A row the source has no usage for at all: ``code`` is stable (``usage.no_meter``,
    ``usage.interval_mismatch``, ``usage.not_delivered``), ``message`` says what and where."""

    row: int
    code: str
    message: str

    def code_for(self, caller: str) -> str:
        """The code as ``caller`` reports it: ``usage.no_meter`` → ``billing.no_meter``."""
        return f"{caller}.{self.code.partition('.')[2]}"


@dataclass(slots=True)
class UsageBatch:
    """Usage of some rows of a query (``rows``: their indices in the query, ascending within a
    batch), all measured at ``interval_s``.

    ``det``: bill determinants of each row over its own days; ``valid`` (n,): intervals of the
    row's days that hold data (0: no data at all); ``days``: the ISO local days of the window
    and ``daily_kwh`` (n, len(days)) the energy of each; ``kvah_total``/``kwh_export`` (n,) or
    ``None`` when no meter of the batch measures them (meters without a kVAh channel give their
    kWh, without export 0); ``channel_ids``: the kWh channel billed (the meter installed last;
    ``None`` from an external MDM); ``meters``: the meters whose intervals count, when more
    than one did (an exchange), else ``None``; ``versions``: the data-version fingerprint of
    each row (see :meth:`UsageSource.changed`). Without ``query.details`` the three lists may be
    empty."""

    rows: I64
    interval_s: int
    det: Determinants
    valid: I64
    days: list[str]
    daily_kwh: F64
    kvah_total: F64 | None = None
    kwh_export: F64 | None = None
    channel_ids: list[int | None] = field(default_factory=list)
    meters: list[list[dict[str, Any]] | None] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    problems: list[UsageProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls, problems: list[UsageProblem]) -> UsageBatch:
        """A batch of no rows that names the rows without usage."""
        z = np.zeros(0)
        det = Determinants(z, np.zeros((0, 0)), z, np.zeros((0, 0)), z, z)
        return cls(np.zeros(0, dtype=np.int64), 0, det, np.zeros(0, dtype=np.int64), [], np.zeros((0, 0)),
                   problems=problems)  # fmt: skip


class UsageSource(Protocol):
    """Where billing gets usage. Implementations receive their own collaborators (a session,
    a store) when they are built; a source is used by one thread at a time."""

    def usage(self, query: UsageQuery) -> Iterator[UsageBatch]:
        """The rows of ``query`` in batches of at most ``query.chunk_rows``. Rows without usage
        are named in a batch's ``problems`` (they are in no batch's ``rows``)."""
        ...

    def changed(self, start: datetime, end: datetime, versions: Sequence[Mapping[str, Any]]) -> list[bool]:
        """For fingerprints given out for the window ``[start, end)``: which no longer match the
        data held now (a correction, late data or an estimate replaced by actual data)."""
        ...


#: Builds the usage source that reads through a session (the bill run gives it the session it
#: reads on: its own, or a second connection sharing its snapshot).
UsageFactory = Callable[[Any], UsageSource]
