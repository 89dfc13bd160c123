"""Shadow billing: rate a cycle under another tariff version and report the differences,
without issuing bills (nothing is written). Takes a Session, never writes or commits."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from meter2cash.cis.billing.periods import MONTHLY, billing_period
from meter2cash.cis.billing.planning import plan_jobs, select_agreements
from meter2cash.cis.billing.run import rate_jobs
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.mdm.usage.port import UsageFactory

SHADOW_VERSION_ID = -1


@dataclass(slots=True)
class ShadowLine:
    service_agreement: str
    current: Decimal
    shadow: Decimal

    @property
    def difference(self) -> Decimal:
        return self.shadow - self.current


@dataclass(slots=True)
class ShadowReport:
    """Per agreement: the bill total under its tariff versions and under the shadow version."""

    period: str
    tariff: str
    lines: list[ShadowLine] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current_total(self) -> Decimal:
        return sum((ln.current for ln in self.lines), Decimal(0))

    @property
    def shadow_total(self) -> Decimal:
        return sum((ln.shadow for ln in self.lines), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "tariff": self.tariff,
            "bills": len(self.lines),
            "current_total": str(self.current_total),
            "shadow_total": str(self.shadow_total),
            "difference": str(self.shadow_total - self.current_total),
            "agreements": [
                {"service_agreement": ln.service_agreement, "current": str(ln.current),
                 "shadow": str(ln.shadow), "difference": str(ln.difference)}
                for ln in self.lines
            ],
            "errors": self.errors,
        }  # fmt: skip


def shadow_run(
    session: Session,
    period: str,
    shadow: TariffVersionDef,
    *,
    tz: str,
    usage: UsageFactory,
    cycle: str = MONTHLY,
) -> ShadowReport:
    """Rate the agreements of ``cycle`` on tariff ``shadow.code`` for ``period`` under their
    versions and under ``shadow``; report both totals per agreement."""
    p = billing_period(period, tz)
    agreements = [a for a in select_agreements(session, p, cycle) if a.tariff_code == shadow.code]
    report = ShadowReport(period, shadow.code)
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    source = usage(session)
    for label, override in (("current", None), ("shadow", (SHADOW_VERSION_ID, shadow))):
        versions: dict[int, TariffVersionDef] = {}
        errors: list[dict[str, Any]] = []
        jobs = plan_jobs(session, agreements, p, errors, versions, override)
        for rc in rate_jobs(session, jobs, p, tz, versions, errors, source):
            for k, j in enumerate(rc.jobs):
                totals[j.a.number][label] += rc.rated.money(int(rc.rated.total[k]))
        if label == "current":
            report.errors = errors
    for number in sorted(totals):
        t = totals[number]
        if "current" in t and "shadow" in t:
            report.lines.append(ShadowLine(number, t["current"], t["shadow"]))
    return report
