"""What a bill run gives: totals per customer class and kind, the run's result, and the rated
batches the run hands to the bill store."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meter2cash.cis.billing.planning import Job
from meter2cash.cis.rating.types import RatedArrays


@dataclass(slots=True)
class Totals:
    count: int = 0
    kwh: Decimal = Decimal("0.000")
    amount: Decimal = Decimal("0.00")


@dataclass(slots=True)
class BillRunResult:
    """What a bill run did: ``bills`` are the new bill ids (prepaid statements included);
    ``skipped`` counts agreements already billed for the period; ``errors`` name agreements
    that could not be billed, with a code; ``estimated`` counts bills marked estimated."""

    run_id: int
    period: str
    bills: list[int] = field(default_factory=list)
    skipped: int = 0
    estimated: int = 0
    statements: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)

    @property
    def total_amount(self) -> Decimal:
        return sum((t.amount for (_, k), t in self.totals.items() if k != "prepaid"), Decimal("0.00"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "period": self.period,
            "bills": len(self.bills),
            "bill_ids": self.bills,
            "skipped": self.skipped,
            "estimated": self.estimated,
            "prepaid_statements": self.statements,
            "errors": self.errors,
            "totals": [
                {"customer_class": c, "kind": k, "count": t.count, "kwh": str(t.kwh), "amount": str(t.amount)}
                for (c, k), t in sorted(self.totals.items())
            ],
            "total_amount": str(self.total_amount),
        }


@dataclass(slots=True)
class RatedChunk:
    """Rated jobs of one tariff version: arrays, inputs and per-bill determinants (JSON)."""

    jobs: list[Job]
    rated: RatedArrays
    determinants: list[dict[str, Any]]
    estimated: list[bool]
