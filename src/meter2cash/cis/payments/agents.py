"""Payment-agent batch files (banks, post offices, kiosks): CSV, one payment per line.

Format (UTF-8, comma separated, header line required, column order free)::

    agent,transaction_id,account,amount,paid_on,purpose
    POST-PUNE,TX0001,A-1001,450.00,2026-10-03,payment
    KIOSK-7,77812,A-1002,200,2026-10-03,recharge

``purpose`` is optional (``payment`` by default; ``recharge`` tops up the prepaid wallet). The
pair ``agent``/``transaction_id`` identifies a payment: loading the same file twice records
nothing new (those lines are reported as ``payment.duplicate``). Bad lines are reported with
their line number, field and code; good lines are kept.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.models import Payment
from meter2cash.core.errors import M2CError, Problem

REQUIRED = ("agent", "transaction_id", "account", "amount", "paid_on")


@dataclass(slots=True)
class BatchResult:
    """What a batch load did: receipts recorded, duplicates skipped, problems by line."""

    receipts: list[str] = field(default_factory=list)
    total: Decimal = Decimal("0.00")
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "recorded": len(self.receipts),
            "total": str(self.total),
            "receipts": self.receipts,
            "problems": [p.to_dict() for p in self.problems],
        }


def load_agent_batch(session: Session, text: str, *, currency: str, source: str = "<batch>") -> BatchResult:
    """Record every good line of an agent batch file (see the module docstring). Does not commit;
    each line runs in a savepoint, so a line that fails leaves the others in place."""
    from meter2cash.cis.payments.receipts import receive
    from meter2cash.cis.prepaid.wallet import recharge_account

    result = BatchResult()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        result.problems.append(
            Problem("batch.bad_header", f"missing column(s) {', '.join(missing)}", line=1, source=source)
        )
        return result
    accounts: dict[str, int | None] = {}
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}

        def bad(code: str, msg: str, fld: str | None = None, line: int = n) -> None:
            result.problems.append(Problem(code, msg, line=line, field=fld, source=source))

        number = row["account"]
        if number not in accounts:
            accounts[number] = session.scalar(select(Account.id).where(Account.number == number))
        acct = accounts[number]
        if acct is None:
            bad("payment.unknown_account", f"no account {number!r}", "account")
            continue
        try:
            amount = Decimal(row["amount"])
        except InvalidOperation:
            bad("payment.bad_amount", f"{row['amount']!r} is not an amount", "amount")
            continue
        try:
            paid_on = date.fromisoformat(row["paid_on"])
        except ValueError:
            bad("payment.bad_date", f"{row['paid_on']!r} is not a date (YYYY-MM-DD)", "paid_on")
            continue
        purpose = row.get("purpose") or "payment"
        if purpose not in ("payment", "recharge"):
            bad("payment.bad_purpose", f"purpose {purpose!r} is not payment or recharge", "purpose")
            continue
        if not row["agent"] or not row["transaction_id"]:
            bad("payment.no_reference", "agent and transaction_id are required", "transaction_id")
            continue
        external = f"agent:{row['agent']}:{row['transaction_id']}"
        try:
            with session.begin_nested():
                kw = dict(
                    channel="agent",
                    currency=currency,
                    received_on=paid_on,
                    reference=f"{row['agent']} {row['transaction_id']}",
                    external_id=external,
                    office=row["agent"],
                )
                if purpose == "recharge":
                    pay: Payment = recharge_account(session, acct, amount, **kw)  # type: ignore[arg-type]
                else:
                    pay = receive(session, acct, amount, **kw)  # type: ignore[arg-type]
        except M2CError as exc:
            bad(exc.code, exc.message, "amount" if exc.code == "payment.bad_amount" else None)
            continue
        result.receipts.append(pay.receipt_number)
        result.total += amount
    return result
