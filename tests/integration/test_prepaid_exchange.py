"""The daily prepaid charge across a meter exchange, on SQLite and PostgreSQL: each meter counts
inside its own installation window, as on a bill (the usage port's one rule).

14 October 2026 in Asia/Kolkata, the exchange at 11:00 local: the old meter reads 0.1 kWh in each
of the 44 quarter hours before it (4.4 kWh), the new one 0.2 kWh in each of the 52 after it
(10.4 kWh). Both send the whole day, the old one after its removal and the new one before its
installation: those readings are not the consumer's. The day's energy is 14.8 kWh.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from test_billing_splits import EXCHANGE, IST, agreement, meter, put

from meter2cash.cis.prepaid.daily_charge import run_daily
from meter2cash.cis.prepaid.models import PrepaidCharge
from meter2cash.mdm.usage.local import LocalUsage

DAY = date(2026, 10, 14)


def test_the_daily_charge_reads_each_meter_inside_its_installation(session):
    sa, sp = agreement(session, "res-pp", "2")
    sa.payment_mode = "prepaid"
    old = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_15m"])
    new = meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    day_start = datetime(2026, 10, 14, tzinfo=IST).astimezone(UTC)
    day_end = datetime(2026, 10, 15, tzinfo=IST).astimezone(UTC)
    put(session, old["kwh_import_15m"], 0.1, day_start, day_end)
    put(session, new["kwh_import_15m"], 0.2, day_start, day_end)
    session.flush()
    result = run_daily(session, DAY, tz="Asia/Kolkata", currency="INR", evaluate=False, usage=LocalUsage)
    assert result.errors == [] and result.charged == 1
    charge = session.scalars(select(PrepaidCharge)).one()
    assert charge.day == DAY and charge.wh == 14_800
