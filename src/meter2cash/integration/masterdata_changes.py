"""A bundle's change of an existing agreement's payment mode or tariff: a dated change, never a
silent flip.

A record that changes an existing agreement's ``payment_mode`` or ``tariff_code`` must say from
when, with the agreement's ``terms`` (its whole history, each term with its mode and tariff); a
bare change of the columns is refused (``masterdata.undated_change``). In the terms, a change of
payment mode goes through the same rules and the same settlement as ``m2c agreement change-mode``
(:mod:`meter2cash.cis.contracts.payment_mode`): one change, from a date D on, at most today; the bills of
periods reaching D are cancelled and billed again and the balance moves into the new mode, once
the terms are written. A bundle that rewrites an earlier mode history is refused
(``masterdata.mode_history_rewritten``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.contracts.changes import bills_reaching, rebill_numbers
from meter2cash.cis.contracts.payment_mode import check_mode_change
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.prepaid.settlement import settle_balance
from meter2cash.core.errors import M2CError, Problem
from meter2cash.integration.masterdata_loader import Loader
from meter2cash.integration.masterdata_spec import ENTITY
from meter2cash.mdm.usage.port import UsageFactory


@dataclass(frozen=True, slots=True)
class PendingModeChange:
    """A payment-mode change a bundle makes, applied after its terms are written."""

    number: str
    effective_from: date
    to_mode: str


def _history(terms: Any, start: date, column: str, value: Any) -> list[tuple[date, Any]]:
    """``(from, value)`` of one field over an agreement's terms (its column when it has none)."""
    if not terms:
        return [(start, value)]
    return [(t["effective_from"], t[column]) for t in terms]


def _on(history: list[tuple[date, Any]], day: date) -> Any:
    current = history[0][1]
    for frm, v in history:
        if frm > day:
            break
        current = v
    return current


def dated_changes(
    loader: Loader,
    records: list[tuple[int, dict[str, Any]]],
    existing: dict[str, dict[str, Any]],
    terms: dict[int, tuple[dict[str, Any], ...]],
    source: str,
    today: date,
) -> tuple[list[tuple[int, dict[str, Any]]], list[PendingModeChange]]:
    """The records that may be written, and the payment-mode changes to apply once they are;
    records refused are reported on the loader."""
    spec = ENTITY["service_agreements"]
    kept: list[tuple[int, dict[str, Any]]] = []
    pending: list[PendingModeChange] = []
    for line, rec in records:
        old = existing.get(str(rec["number"]))
        if old is None:
            kept.append((line, rec))
            continue
        problem = None
        start = rec.get("start_date", old["start_date"])
        mode_change: PendingModeChange | None = None
        for column in ("payment_mode", "tariff_code"):
            before = _history(terms.get(old["_id"]), old["start_date"], column, old[column])
            if "terms" in rec:
                after = _history(rec["terms"], start, column, rec.get(column, old[column]))
            elif column in rec and rec[column] != old[column]:
                problem = Problem(
                    "masterdata.undated_change",
                    f"{rec['number']}: a change of {column} from {old[column]} to {rec[column]} needs "
                    f"a date: give the agreement's terms with the term it starts from (or use m2c "
                    f"agreement {'change-mode' if column == 'payment_mode' else 'change-tariff'})",
                    line=line, field=column, source=source,
                )  # fmt: skip
                break
            else:
                continue
            if column != "payment_mode":
                continue  # a tariff history is the terms as written (rebilled on request)
            days = sorted({d for d, _ in before} | {d for d, _ in after})
            differ = [d for d in days if _on(before, d) != _on(after, d)]
            if not differ:
                continue
            first = differ[0]
            if any(
                _on(after, d) != _on(after, first) or _on(before, d) != _on(before, first)
                for d in days
                if d > first
            ):
                problem = Problem(
                    "masterdata.mode_history_rewritten",
                    f"{rec['number']}: the terms change the payment mode more than once or rewrite an "
                    f"earlier change; make one change at a time (m2c agreement change-mode)",
                    line=line, field="terms", source=source,
                )  # fmt: skip
                break
            sa = loader.session.get(ServiceAgreement, old["_id"])
            assert sa is not None
            try:
                check_mode_change(loader.session, sa, first, _on(after, first), today=today)
            except M2CError as exc:
                problem = Problem(
                    "masterdata." + exc.code.rsplit(".", 1)[-1], f"{rec['number']}: {exc.message}",
                    line=line, field="terms", source=source,
                )  # fmt: skip
                break
            mode_change = PendingModeChange(str(rec["number"]), first, _on(after, first))
        if problem is not None:
            loader.reject(spec, [problem], str(rec["number"]))
            continue
        if mode_change is not None:
            pending.append(mode_change)
        kept.append((line, rec))
    return kept, pending


def apply_mode_changes(
    session: Session, pending: list[PendingModeChange], *, tz: str, currency: str, usage: UsageFactory
) -> None:
    """After the terms are written: rebill the bills each change reaches, settle the balance."""
    for change in pending:
        sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == change.number))
        if sa is None:
            continue
        affected = bills_reaching(session, sa.id, change.effective_from)
        if affected:
            reason = f"payment mode changed from {change.effective_from}"
            rebill_numbers(session, affected, reason, tz=tz, currency=currency, usage=usage)
        settle_balance(session, sa, change.to_mode, on=change.effective_from, currency=currency)
