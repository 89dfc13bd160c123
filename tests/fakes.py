"""In-memory fakes of the platform's ports, for unit tests that use no database.

``MemoryUsage`` implements :class:`meter2cash.mdm.usage.port.UsageSource` over usage given per
service point code: energy by TOU period name, the maximum demand, the estimated share and a
version. Imported as ``from fakes import MemoryUsage`` (``tests/`` is on the path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from meter2cash.mdm.determinants import Determinants
from meter2cash.mdm.usage.port import UsageBatch, UsageProblem, UsageQuery


@dataclass
class Usage:
    """A service point's usage over any days asked for: kWh per TOU period name (periods not
    named are 0), maximum demand [kW], share of estimated intervals, and the data version."""

    kwh: dict[str, float]
    max_demand_kw: float = 0.0
    estimated_share: float = 0.0
    version: int = 1
    intervals: int = 96


@dataclass
class MemoryUsage:
    """Usage per service point code; a code it does not hold has no meter."""

    held: dict[str, Usage] = field(default_factory=dict)
    interval_s: int = 900
    queries: list[UsageQuery] = field(default_factory=list)

    def __call__(self, session: Any) -> MemoryUsage:  # a factory, as bootstrap gives one
        return self

    def usage(self, query: UsageQuery) -> Iterator[UsageBatch]:
        self.queries.append(query)
        names = list(query.period_names)
        rows = [r for r, code in enumerate(query.service_point_codes) if code in self.held]
        problems = [
            UsageProblem(r, "usage.no_meter", f"no meter at {code}")
            for r, code in enumerate(query.service_point_codes)
            if code not in self.held
        ]
        days = (query.end - query.start) // timedelta(days=1)
        first = True
        for c in range(0, max(len(rows), 1), query.chunk_rows):
            part = rows[c : c + query.chunk_rows]
            held = [self.held[query.service_point_codes[r]] for r in part]
            by_period = np.array([[u.kwh.get(n, 0.0) for n in names] for u in held]).reshape(
                len(part), len(names)
            )
            demand = np.array([u.max_demand_kw for u in held])
            det = Determinants(
                kwh_total=by_period.sum(axis=1),
                kwh_by_period=by_period,
                max_demand_kw=demand,
                max_demand_kw_by_period=np.repeat(demand[:, None], len(names), axis=1),
                estimated_share=np.array([u.estimated_share for u in held]),
                missing_share=np.zeros(len(part)),
            )
            yield UsageBatch(
                rows=np.asarray(part, dtype=np.int64),
                interval_s=self.interval_s,
                det=det,
                valid=np.array([u.intervals for u in held], dtype=np.int64),
                days=[str((query.start + timedelta(days=d)).date()) for d in range(days)],
                daily_kwh=np.repeat(by_period.sum(axis=1)[:, None] / max(days, 1), days, axis=1),
                channel_ids=[None] * len(part),
                meters=[None] * len(part),
                versions=[
                    {"memory": query.service_point_codes[r], "version": u.version}
                    for r, u in zip(part, held, strict=True)
                ],
                problems=problems if first else [],
            )
            first = False

    def changed(self, start: datetime, end: datetime, versions: Sequence[Mapping[str, Any]]) -> list[bool]:
        return [self.held[v["memory"]].version != v["version"] for v in versions]
