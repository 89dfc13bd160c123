"""Bills split at a change of sanctioned load (contract terms) and bills across a meter exchange,
on SQLite and PostgreSQL. October 2026 in Asia/Kolkata (31 days, 96 intervals a day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select
from test_billing import EXAMPLES, PERIOD, TZ, build_fleet

from meter2cash.cis.billing.documents import render_bill_html
from meter2cash.cis.billing.models import Bill, BillSegment
from meter2cash.cis.billing.pdf import render_bill_pdf
from meter2cash.cis.billing.rebill import rebill, stale_bills
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.contracts.changes import change_load, rebill_affected, terms_of
from meter2cash.cis.ledger.journal import trial_balance
from meter2cash.cis.parties.models import (
    Account,
    ContractTerm,
    Person,
    Premise,
    ServiceAgreement,
    ServicePoint,
)
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.core.errors import M2CError
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel, Installation, Meter, ReadingType
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

IST = ZoneInfo(TZ)
#: 11:00 on 14 October, local time: the meter exchange.
EXCHANGE = datetime(2026, 10, 14, 11, 0, tzinfo=IST).astimezone(UTC)
OCT_START = datetime(2026, 10, 1, tzinfo=IST).astimezone(UTC)
OCT_END = datetime(2026, 11, 1, tzinfo=IST).astimezone(UTC)


def agreement(session, tariff: str, kw: str, kva: str | None = None) -> tuple[ServiceAgreement, int]:
    """One agreement on an example tariff; returns it and its service point id."""
    path = EXAMPLES / f"{tariff}.toml"
    store_tariff(session, load_tariff_file(path), path.read_text())
    person, premise = Person(name="Site"), Premise(code="P-S", address="4 Canal Rd")
    session.add_all([person, premise])
    session.flush()
    account, sp = Account(number="A-S", person_id=person.id), ServicePoint(code="SP-S", premise_id=premise.id)
    session.add_all([account, sp])
    session.flush()
    sa = ServiceAgreement(
        number="SA-S", account_id=account.id, service_point_id=sp.id,
        tariff_code=load_tariff_file(path).code, sanctioned_load_kw=Decimal(kw),
        contract_demand_kva=None if kva is None else Decimal(kva), start_date=date(2025, 1, 1),
    )  # fmt: skip
    session.add(sa)
    session.flush()
    return sa, sp.id


def meter(
    session, sp_id: int, serial: str, installed: datetime, removed: datetime | None, codes: list[str]
) -> dict[str, int]:
    rts = ensure_catalogue(session)
    m = Meter(serial=serial, status="installed" if removed is None else "removed")
    session.add(m)
    session.flush()
    session.add(
        Installation(meter_id=m.id, service_point_id=sp_id, installed_at=installed, removed_at=removed)
    )
    ids = {}
    for code in codes:
        ch = Channel(meter_id=m.id, reading_type_id=rts[code].id)
        session.add(ch)
        session.flush()
        ids[code] = ch.id
    return ids


def put(
    session, channel_id: int, per_interval: float, start: datetime, end: datetime, minutes: int = 15
) -> None:
    """Constant ``per_interval`` kWh in every interval of ``minutes`` of ``[start, end)``."""
    received = {}
    day = start.date()
    while day <= end.date():
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        starts = np.asarray([day_start + timedelta(minutes=minutes * i) for i in range(24 * 60 // minutes)])
        idx = np.flatnonzero((starts >= start) & (starts < end))
        if idx.size:
            received[(channel_id, day)] = (idx, np.full(idx.size, per_interval))
        day += timedelta(days=1)
    MeasurementStore(session).merge(received, {channel_id: minutes * 60})


def stored_kwh(session, channel_id: int) -> Decimal:
    """Every stored interval of the channel inside October (local), summed."""
    w = MeasurementStore(session).read_window([channel_id], OCT_START, OCT_END, 900)
    return Decimal(str(round(float(np.nansum(w.values)), 3)))


def one_bill(session) -> Bill:
    return session.scalars(select(Bill).where(Bill.status != "cancelled")).one()


def test_a_load_change_on_the_11th_prorates_the_fixed_charge_per_kw(session):
    sa, sp = agreement(session, "res-lt1", "2")
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])
    put(session, ch["kwh_import_15m"], 0.1, OCT_START, OCT_END)  # 9.6 kWh a day
    change = change_load(session, "SA-S", date(2026, 10, 11), "5", reason="new air conditioner", by="test")
    session.commit()
    assert change.current and change.bills_affected == []
    assert sa.sanctioned_load_kw == Decimal(5)
    assert [(t.effective_from, t.sanctioned_kw) for t in terms_of(session, sa)] == [
        (date(2025, 1, 1), Decimal(2)),  # the contract until then, kept as a term
        (date(2026, 10, 11), Decimal(5)),
    ]
    event = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == "agreement.load_changed")
    ).one()
    assert event.payload["previous_sanctioned_kw"] == "2" and event.payload["sanctioned_kw"] == "5"

    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = one_bill(session)
    segs = session.scalars(
        select(BillSegment).where(BillSegment.bill_id == bill.id).order_by(BillSegment.seq)
    )
    assert [(s.start_date, s.end_date, s.total_kwh) for s in segs] == [
        (date(2026, 10, 1), date(2026, 10, 10), Decimal("96.000")),
        (date(2026, 10, 11), date(2026, 10, 31), Decimal("201.600")),
    ]
    per_kw = [ln for ln in bill.lines if "Fixed charge on sanctioned load" in ln.description]
    # 20 INR/kW/month: 2 kW × 20 × 10/31 = 12.903 → 12.90; 5 kW × 20 × 21/31 = 67.742 → 67.74
    assert [(ln.quantity, ln.amount, ln.segment) for ln in per_kw] == [
        (Decimal(2), Decimal("12.90"), 1),
        (Decimal(5), Decimal("67.74"), 2),
    ]
    monthly = [
        ln.amount for ln in bill.lines if ln.component == "fixed" and "sanctioned" not in ln.description
    ]
    assert monthly == [Decimal("16.13"), Decimal("33.87")]  # 50 × 10/31, 50 × 21/31
    # The month's slab limits are shared by days: 100 kWh × 10/31 = 32.258 kWh at 3.00, not 100.
    energy = [(ln.quantity, ln.rate, ln.amount) for ln in bill.lines if ln.component == "energy"]
    assert energy == [
        (Decimal("32.258"), Decimal(3), Decimal("96.77")),
        (Decimal("63.742"), Decimal("4.5"), Decimal("286.84")),
        (Decimal("67.742"), Decimal(3), Decimal("203.23")),
        (Decimal("133.858"), Decimal("4.5"), Decimal("602.36")),
    ]
    assert bill.total == sum(ln.amount for ln in bill.lines) and bill.total_kwh == Decimal("297.600")
    assert [s["sanctioned_load_kw"] for s in bill.determinants["segments"]] == ["2.000", "5.000"]
    html = render_bill_html(bill)
    assert "Sanctioned load 2 kW until 10 Oct, 5 kW from 11 Oct" in html
    assert trial_balance(session).total == 0


def test_each_segment_bills_demand_on_its_own_contract_demand(session):
    # IND-KVAH: billing demand ≥ 75 % of contract demand; 400 kVA, then 600 kVA from the 11th.
    agreement(session, "ind-kvah", "300", "400")
    sp = session.scalars(select(ServicePoint)).one().id
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])
    put(session, ch["kwh_import_15m"], 20.0, OCT_START, OCT_END)  # 80 kW all month
    change_load(session, "SA-S", date(2026, 10, 11), "450", "600", reason="plant extension", by="test")
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = one_bill(session)
    demand = [(ln.quantity, ln.amount, ln.segment) for ln in bill.lines if "billing demand" in ln.description]
    # 75 % of 400 and of 600 kVA, at 300 INR/kW for the segment's days: 300 × 300 × 10/31 = 29032.258;
    # 450 × 300 × 21/31 = 91451.613 (a split bill charges the month's demand once, shared by days)
    assert demand == [(Decimal(300), Decimal("29032.26"), 1), (Decimal(450), Decimal("91451.61"), 2)]
    assert bill.lines[[ln.amount for ln in bill.lines].index(Decimal("29032.26"))].description == (
        "01 Oct–10 Oct: Demand charge on billing demand (10/31 days)"
    )
    peak = [ln.amount for ln in bill.lines if "peak maximum demand" in ln.description]
    assert peak == [Decimal("3096.77"), Decimal("6503.23")]  # 80 kW × 120 × 10/31, × 21/31
    kva = [(ln.quantity, ln.amount) for ln in bill.lines if "contract demand" in ln.description]
    # 350 INR/kVA/month: 400 × 350 × 10/31 = 45161.29; 600 × 350 × 21/31 = 142258.06
    assert kva == [(Decimal(400), Decimal("45161.29")), (Decimal(600), Decimal("142258.06"))]
    assert [s["contract_demand_kva"] for s in bill.determinants["segments"]] == ["400.000", "600.000"]


def test_a_split_bill_carries_the_highest_demand_of_its_segments_into_the_ratchet(session):
    agreement(session, "ind-kvah", "300", "400")
    sp = session.scalars(select(ServicePoint)).one().id
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])
    eleventh = datetime(2026, 10, 11, tzinfo=IST).astimezone(UTC)
    put(session, ch["kwh_import_15m"], 20.0, OCT_START, eleventh)  # 80 kW
    put(session, ch["kwh_import_15m"], 50.0, eleventh, OCT_END)  # 200 kW
    put(session, ch["kwh_import_15m"], 10.0, OCT_END, datetime(2026, 12, 1, tzinfo=IST).astimezone(UTC))
    change_load(session, "SA-S", date(2026, 10, 11), "450", "200", reason="x", by="test")
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    run_bills(session, "2026-11", tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    nov = session.scalars(select(Bill).where(Bill.period == "2026-11")).one()
    demand = next(ln for ln in nov.lines if "billing demand" in ln.description)
    # max(40 kW, 75 % of 200 kVA, 85 % of October's 200 kW in its second segment, not of its 80 kW)
    assert demand.quantity == Decimal(170)


def test_net_metering_across_a_split_uses_the_bank_once(session):
    agreement(session, "res-nm", "2")
    sp = session.scalars(select(ServicePoint)).one().id
    ch = meter(
        session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m", "kwh_export_15m"]
    )
    nov_end = datetime(2027, 1, 1, tzinfo=IST).astimezone(UTC)
    put(session, ch["kwh_import_15m"], 0.1, OCT_START, nov_end)
    put(session, ch["kwh_export_15m"], 0.15, OCT_START, nov_end)  # a surplus of 4.8 kWh a day
    session.commit()
    change_load(session, "SA-S", date(2026, 11, 11), "3", reason="x", by="test")
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    run_bills(session, "2026-11", tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    nov = session.scalars(select(Bill).where(Bill.period == "2026-11")).one()
    # October banks 148.8; November adds 4.8 × 30 in two segments: the bank is the same as unsplit.
    first, second = nov.determinants["segments"]
    assert first["banked_kwh"] == 148.8 + 48.0 and second["banked_kwh"] == 96.0
    run_bills(session, "2026-12", tz=TZ, currency="INR", usage=LocalUsage)
    dec = session.scalars(select(Bill).where(Bill.period == "2026-12")).one()
    assert dec.determinants["banked_kwh"] == 292.8 + 148.8  # November's whole bank carried in


def test_a_meter_exchange_on_the_14th_bills_both_meters(session):
    _, sp = agreement(session, "res-lt1", "2")
    old = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_15m"])
    new = meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    put(session, old["kwh_import_15m"], 0.1, OCT_START - timedelta(days=1), EXCHANGE)
    put(session, new["kwh_import_15m"], 0.2, EXCHANGE, OCT_END + timedelta(days=1))
    session.commit()
    energy_in = stored_kwh(session, old["kwh_import_15m"]) + stored_kwh(session, new["kwh_import_15m"])
    # M-1: 13 days and 11 h = 1292 intervals × 0.1; M-2: 17 days and 13 h = 1684 intervals × 0.2
    assert energy_in == Decimal("466.000")

    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = one_bill(session)
    assert bill.total_kwh == energy_in and not bill.estimated
    assert bill.determinants["meters"] == [
        {"serial": "M-1", "channel_id": old["kwh_import_15m"], "from": None, "until": "2026-10-14",
         "kwh": 129.2},
        {"serial": "M-2", "channel_id": new["kwh_import_15m"], "from": "2026-10-14", "until": None,
         "kwh": 336.8},
    ]  # fmt: skip
    # One contract, one tariff: the exchange changes no charge, only where the energy was read.
    assert not session.scalars(select(BillSegment)).all()
    assert bill.determinants["data_version"]["channels"] == sorted(
        [old["kwh_import_15m"], new["kwh_import_15m"]]
    )
    assert bill.determinants["max_demand_kw"] == 0.8  # 0.2 kWh in 15 minutes, on M-2
    assert "Meter M-1 until 14 Oct, M-2 from 14 Oct" in render_bill_html(bill)
    assert b"Meter M-1 until 14 Oct, M-2 from 14 Oct" in render_bill_pdf(bill, compress=False)


def test_a_removed_meter_s_later_intervals_do_not_count(session):
    _, sp = agreement(session, "res-lt1", "2")
    old = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_15m"])
    new = meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    # M-1 keeps sending after it was taken out (a meter in the lab): those intervals are not billed.
    put(session, old["kwh_import_15m"], 0.1, OCT_START, OCT_END)
    put(session, new["kwh_import_15m"], 0.2, EXCHANGE, OCT_END)
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = one_bill(session)
    assert bill.total_kwh == Decimal("466.000")
    assert bill.determinants["data_version"]["spans"] == {
        str(old["kwh_import_15m"]): ["2025-01-01", "2026-10-14"],
        str(new["kwh_import_15m"]): ["2026-10-14", None],
    }
    # A late file of M-1 for days after its removal is not billed: the bill is not stale.
    late = datetime(2026, 10, 20, tzinfo=IST).astimezone(UTC)
    put(session, old["kwh_import_15m"], 0.4, late, late + timedelta(days=2))
    session.commit()
    assert stale_bills(session, LocalUsage(session), period=PERIOD) == []
    # A correction of M-1 before the exchange is: the bill is rated again with it.
    fix = datetime(2026, 10, 5, tzinfo=IST).astimezone(UTC)
    put(session, old["kwh_import_15m"], 0.2, fix, fix + timedelta(days=1))
    session.commit()
    stale = stale_bills(session, LocalUsage(session), period=PERIOD)
    assert [s.number for s in stale] == [bill.number]
    (new_id,) = rebill(session, stale, tz=TZ, currency="INR", usage=LocalUsage).new_bills
    session.commit()
    assert session.get(Bill, new_id).total_kwh == Decimal("475.600")  # 96 intervals × 0.1 more


def test_an_exchange_from_a_30_minute_to_a_15_minute_meter_bills_at_30_minutes(session):
    _, sp = agreement(session, "res-lt1", "2")
    old = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_30m"])
    new = meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    put(session, old["kwh_import_30m"], 0.2, OCT_START, OCT_END, minutes=30)  # sends on after removal
    # one 15-minute interval of M-2 never arrived: its half hour is estimated
    gap = datetime(2026, 10, 20, 6, 15, tzinfo=UTC)
    put(session, new["kwh_import_15m"], 0.2, EXCHANGE, gap)
    put(session, new["kwh_import_15m"], 0.2, gap + timedelta(minutes=15), OCT_END)
    session.commit()
    result = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert result.errors == []
    bill = one_bill(session)
    det = bill.determinants
    # M-1: 646 half hours × 0.2 until 11:00 on the 14th; M-2: 842 half hours × 0.4, one of them
    # with a 15-minute part missing: read 841 × 0.4, the missing half hour estimated at the
    # average of the 1,487 read (465.6 kWh / 1,487)
    assert det["interval_s"] == 1800 and bill.estimated
    assert [(m["serial"], m["kwh"]) for m in det["meters"]] == [("M-1", 129.2), ("M-2", 336.4)]
    assert det["max_demand_kw"] == 0.8  # 0.4 kWh in a half hour, on M-2
    assert det["kwh_total"] == round(465.6 + 465.6 / 1487, 3)


def test_meters_whose_intervals_do_not_divide_each_other_are_not_combined(session):
    _, sp = agreement(session, "res-lt1", "2")
    # a 10-minute kWh reading type beside the catalogue's 15-minute one
    session.add(
        ReadingType(
            code="kwh_import_10m", name="Active energy import, 10-min block", obis="1.0.1.29.0.255",
            unit="kWh", interval_s=600, direction="import", accumulation="delta",
        )
    )  # fmt: skip
    session.flush()
    meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_10m"])
    meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    result = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    assert result.bills == [] and [e["code"] for e in result.errors] == ["billing.interval_mismatch"]
    assert "M-1 (600 s), M-2 (900 s)" in result.errors[0]["message"]


def test_rebill_of_a_bill_across_an_exchange_and_a_load_change(session):
    _, sp = agreement(session, "res-lt1", "2")
    old = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), EXCHANGE, ["kwh_import_15m"])
    new = meter(session, sp, "M-2", EXCHANGE, None, ["kwh_import_15m"])
    put(session, old["kwh_import_15m"], 0.1, OCT_START, EXCHANGE)
    put(session, new["kwh_import_15m"], 0.2, EXCHANGE, OCT_END)
    change_load(session, "SA-S", date(2026, 10, 11), "5", reason="upgrade", by="test")
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    first = one_bill(session)
    before, after = first.determinants["segments"]
    assert "meters" not in before and [m["serial"] for m in after["meters"]] == ["M-1", "M-2"]
    # A correction on the new meter: 20 October read 0.3 kWh an interval instead of 0.2.
    day = datetime(2026, 10, 20, tzinfo=IST).astimezone(UTC)
    put(session, new["kwh_import_15m"], 0.3, day, day + timedelta(days=1))
    session.commit()
    stale = stale_bills(session, LocalUsage(session), period=PERIOD)
    assert [s.number for s in stale] == [first.number]
    result = rebill(session, stale, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    (new_id,) = result.new_bills
    again = session.get(Bill, new_id)
    assert again.total_kwh == first.total_kwh + Decimal("9.600")  # 96 intervals × 0.1 more
    assert again.replaces_bill_id == first.id and len(again.determinants["segments"]) == 2
    segs = session.scalars(select(BillSegment).where(BillSegment.bill_id == again.id))
    assert [(s.start_date, s.end_date) for s in segs] == [
        (date(2026, 10, 1), date(2026, 10, 10)),
        (date(2026, 10, 11), date(2026, 10, 31)),
    ]
    assert trial_balance(session).total == 0


def test_a_backdated_load_change_names_the_bill_and_rebills_it(session):
    _, sp = agreement(session, "res-lt1", "2")
    ch = meter(session, sp, "M-1", datetime(2025, 1, 1, tzinfo=UTC), None, ["kwh_import_15m"])
    put(session, ch["kwh_import_15m"], 0.1, OCT_START, OCT_END)
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    first = one_bill(session)
    change = change_load(session, "SA-S", date(2026, 10, 11), "5", reason="found on inspection", by="test")
    assert change.bills_affected == [first.number]
    result = rebill_affected(session, change, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert [s.number for s in result.cancelled] == [first.number] and first.status == "cancelled"
    assert first.cancel_reason == "load changed from 2026-10-11"
    again = session.get(Bill, result.new_bills[0])
    assert again.replaces_bill_id == first.id and again.adjustment == 0  # nothing was paid on it
    per_kw = [ln.amount for ln in again.lines if "Fixed charge on sanctioned load" in ln.description]
    assert per_kw == [Decimal("12.90"), Decimal("67.74")]
    assert trial_balance(session).total == 0


def test_agreements_without_terms_bill_as_before(session):
    build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    for bill in session.scalars(select(Bill)):
        assert "segments" not in bill.determinants and "meters" not in bill.determinants
        assert "contract_demand_kva" not in bill.determinants
        assert {ln.segment for ln in bill.lines} == {1}
    assert not session.scalars(select(ContractTerm)).all()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((date(2026, 10, 11), "0"), "contract.invalid_load"),
        ((date(2026, 10, 11), "-2"), "contract.invalid_load"),
        ((date(2026, 10, 11), "2.0005"), "contract.invalid_load"),
        ((date(2026, 10, 11), 2.5), "contract.invalid_load"),
        ((date(2026, 10, 11), "2", "0"), "contract.invalid_load"),
        ((date(2024, 12, 31), "2"), "contract.before_start"),
    ],
)
def test_change_load_refuses_bad_input(session, args, code):
    agreement(session, "res-lt1", "2")
    with pytest.raises(M2CError) as exc:
        change_load(session, "SA-S", *args, reason="x", by="test")
    assert exc.value.code == code


def test_change_load_refuses_a_second_term_on_a_date_and_an_unknown_agreement(session):
    sa, _ = agreement(session, "res-lt1", "2")
    change_load(session, "SA-S", date(2026, 10, 11), "5", reason="upgrade", by="test")
    with pytest.raises(M2CError) as exc:
        change_load(session, "SA-S", date(2026, 10, 11), "6", reason="again", by="test")
    assert exc.value.code == "contract.duplicate_term"
    with pytest.raises(M2CError) as exc:
        change_load(session, "SA-NONE", date(2026, 10, 11), "6", reason="x", by="test")
    assert exc.value.code == "service_agreement.not_found"
    # A backdated term between two others does not change the agreement's current load.
    back = change_load(session, "SA-S", date(2026, 6, 1), "3", reason="correction", by="test")
    assert not back.current and sa.sanctioned_load_kw == Decimal(5)
