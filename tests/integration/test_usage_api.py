"""Determinants through the API, both ways: given out to an external CIS, delivered by an external MDM."""

from __future__ import annotations

import json
import warnings
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select
from test_billing import PERIOD, TZ, build_fleet

from meter2cash.api import create_app
from meter2cash.bootstrap import bootstrap
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.rebill import rebill, stale_bills
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.config import Settings
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.db import upgrade
from meter2cash.integration.determinants import deliver
from meter2cash.mdm.models import ChannelDay, ChannelDayHistory
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.external import ExternalUsage
from meter2cash.mdm.usage.format import FORMAT, parse_determinants
from meter2cash.mdm.usage.local import LocalUsage
from meter2cash.mdm.usage.port import UsageQuery

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

V1 = "/api/v1"
OCT = {"from": "2026-10-01", "to": "2026-10-31"}


@pytest.fixture
def fleet(platform):
    """The billing fleet (SP-0 … SP-5; SP-4 has no meter, SP-5 no data) behind the API."""
    with platform.sessions() as s:
        channels = build_fleet(s)
    with TestClient(create_app(platform)) as c:
        yield c, channels


def stored_kwh(platform, channel_id: int) -> np.ndarray:
    """The channel's 15-minute kWh over October in Asia/Kolkata, straight from the store."""
    start, end = local_month_bounds(PERIOD, TZ)
    with platform.sessions() as s:
        return MeasurementStore(s).read_window([channel_id], start, end, 900).values[0]


def wh(text: str) -> int:
    return int(Decimal(text) * 1000)


def test_one_service_point_with_and_without_a_tariff(fleet, platform):
    client, channels = fleet
    values = stored_kwh(platform, channels["SA-3"])  # SP-2, a commercial TOU customer
    r = client.get(f"{V1}/service-points/SP-2/determinants", params={**OCT, "tariff": "COM-TOU"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["format"], doc["source"], doc["timezone"], doc["problems"]) == (FORMAT, "meter2cash", TZ, [])
    (rec,) = doc["determinants"]
    assert (rec["service_point"], rec["from"], rec["to"], rec["interval_s"]) == ("SP-2", *OCT.values(), 900)
    assert rec["tou_periods"] == ["normal", "peak", "night"] and rec["demand_interval_s"] == 900
    assert wh(rec["kwh_total"]) == round(float(values.sum()) * 1000)
    assert sum(wh(v) for v in rec["kwh_by_period"].values()) == wh(rec["kwh_total"])
    local = pd.date_range(*local_month_bounds(PERIOD, TZ), freq="15min", inclusive="left").tz_convert(TZ)
    holidays = [date(2026, 10, 2), date(2026, 10, 20)]
    weekday = (local.day_of_week < 5) & ~np.isin(local.date, holidays)
    peak = weekday & (local.hour >= 18) & (local.hour < 22)
    assert abs(wh(rec["kwh_by_period"]["peak"]) - float(values[peak].sum()) * 1000) <= 1
    assert wh(rec["max_demand_kw"]) == round(float(values.max()) * 4000)
    assert rec["valid_intervals"] == 31 * 96 and rec["estimated_share"] == rec["missing_share"] == "0.000000"
    assert rec["daily_kwh"]["first"] == "2026-10-01" and len(rec["daily_kwh"]["kwh"]) == 31
    first_day = values[:96]
    assert wh(rec["daily_kwh"]["kwh"][0]) == round(float(first_day.sum()) * 1000)
    assert rec["kvah_total"] is None and rec["kwh_export"] is None
    plain = client.get(f"{V1}/service-points/SP-2/determinants", params=OCT).json()["determinants"][0]
    assert plain["tou_periods"] == ["total"] and plain["kwh_by_period"] == {"total": rec["kwh_total"]}
    assert plain["version"] == rec["version"]  # the same data


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("SP-9", OCT, 404, "service_point.not_found"),
        ("SP-2", {**OCT, "tariff": "NOPE"}, 404, "tariff.not_found"),
        ("SP-2", {"from": "2026-10-31", "to": "2026-10-01"}, 422, "usage.bad_days"),
        ("SP-2", {"from": "2026-01-01", "to": "2027-12-31"}, 422, "usage.bad_days"),
        ("SP-2", {"from": "2026-10-01"}, 422, "api.invalid_request"),
        ("SP-4", OCT, 422, "usage.no_meter"),
    ],
)
def test_one_service_point_errors(fleet, path, params, status, code):
    client, _ = fleet
    r = client.get(f"{V1}/service-points/{path}/determinants", params=params)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_many_service_points_and_their_delivery_back(fleet, platform):
    client, _ = fleet
    body = {"service_points": ["SP-0", "SP-4", "SP-9", "SP-2"], **OCT, "tariff": "COM-TOU"}
    r = client.post(f"{V1}/service-points/determinants", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [d["service_point"] for d in doc["determinants"]] == ["SP-0", "SP-2"]
    assert [(p["service_point"], p["code"]) for p in doc["problems"]] == [
        ("SP-4", "usage.no_meter"),
        ("SP-9", "service_point.not_found"),
    ]
    too_many = client.post(
        f"{V1}/service-points/determinants", json={**body, "service_points": ["SP-0"] * 1001}
    )
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "api.invalid_request"

    # the document delivered back as an external MDM's: its records are stored and read
    r = client.post(
        f"{V1}/usage/determinants", content=json.dumps(doc), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["records"], out["accepted"], out["refused"], out["outcomes"]) == (2, 2, 0, {"new": 2})
    again = client.post(f"{V1}/usage/determinants", json=doc).json()
    assert again["outcomes"] == {"unchanged": 2}
    with platform.sessions() as s:
        from meter2cash.cis.tariffs.loader import tariff_version_for

        _, vdef = tariff_version_for(s, "COM-TOU", date(2026, 10, 1))
        start, end = local_month_bounds(PERIOD, TZ)
        q = UsageQuery(
            service_point_ids=[0, 0],
            service_point_codes=["SP-2", "SP-0"],
            first=[date(2026, 10, 1)] * 2,
            last=[date(2026, 10, 31)] * 2,
            start=start,
            end=end,
            tz=TZ,
            tou=vdef.tou,
            period_names=vdef.period_names,
            demand_interval_s=900,
        )
        (batch,) = list(ExternalUsage(s).usage(q))
    by_sp = {d["service_point"]: d for d in doc["determinants"]}
    assert batch.det.kwh_total.tolist() == [float(by_sp[c]["kwh_total"]) for c in ("SP-2", "SP-0")]
    assert batch.det.kwh_by_period[0].tolist() == [
        float(by_sp["SP-2"]["kwh_by_period"][n]) for n in vdef.period_names
    ]


def test_deliveries_name_each_refused_record(fleet):
    client, _ = fleet
    doc = {
        "format": FORMAT,
        "source": "Other MDM",
        "timezone": TZ,
        "determinants": [{"service_point": "SP-0"}],
    }
    r = client.post(f"{V1}/usage/determinants", json=doc)
    assert r.status_code == 422 and r.json()["error"]["code"] == "usage.rejected"
    problems = r.json()["error"]["data"]["problems"]
    assert problems and all(p["line"] == 0 and p["field"].startswith("determinants[0].") for p in problems)
    bad = client.post(f"{V1}/usage/determinants", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "usage.bad_document"
    csv = client.post(f"{V1}/usage/determinants", content=b"a,b", headers={"content-type": "text/csv"})
    assert csv.status_code == 415
    deep = client.post(
        f"{V1}/usage/determinants",
        content=b"[" * 200 + b"]" * 200,
        headers={"content-type": "application/json"},
    )
    assert deep.status_code == 422 and deep.json()["error"]["code"] == "input.too_deep"


def test_the_routes_are_in_the_openapi(fleet):
    client, _ = fleet
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths[f"{V1}/service-points/{{code}}/determinants"]
    assert "post" in paths[f"{V1}/service-points/determinants"]
    assert "post" in paths[f"{V1}/usage/determinants"]


@pytest.fixture
def second_url(db_url, tmp_path, request) -> str:
    """Another migrated, empty database of the same kind as the test's."""
    url = (
        request.getfixturevalue("empty_pg_url")
        if db_url.startswith("postgresql")
        else f"sqlite:///{tmp_path / 'b.db'}"
    )
    upgrade(url)
    return url


def bills_by_agreement(session) -> dict[str, tuple]:
    """Each bill as its agreement number → kind, kWh, amounts, estimated and every line."""
    out = {}
    for b in session.scalars(select(Bill).order_by(Bill.id)):
        lines = [(ln.component, ln.description, ln.quantity, ln.unit, ln.rate, ln.amount) for ln in b.lines]
        key = b.service_agreement.number
        out[key] = (b.kind, b.total_kwh, b.subtotal, b.tax, b.total, b.estimated, sorted(lines, key=str))
    return out


def test_a_document_exported_bills_to_the_same_cent_elsewhere(platform, second_url):
    """A utility billed from its own interval data; its determinants given out through the API
    and delivered to a second platform with the same master data and tariffs and no interval
    data bill there to the same cent, line by line."""
    with platform.sessions() as s:
        channels = build_fleet(s)
        # a day without data: SA-1's bill is estimated, the gap filled by the month's mean
        s.execute(
            delete(ChannelDay).where(
                ChannelDay.channel_id == channels["SA-1"], ChannelDay.day == date(2026, 10, 10)
            )
        )
        s.commit()
        here = run_bills(s, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
        s.commit()
        billed = bills_by_agreement(s)
        # the days each agreement is billed for, and its tariff
        asked: dict[tuple[str, date], list[str]] = {}
        for sa in s.scalars(select(ServiceAgreement).order_by(ServiceAgreement.number)):
            asked.setdefault((sa.tariff_code, max(sa.start_date, date(2026, 10, 1))), []).append(
                sa.service_point.code
            )
    assert len(billed) == 4 and billed["SA-1"][5] and not billed["SA-3"][5]
    assert sorted(e["code"] for e in here.errors) == ["billing.no_data", "billing.no_meter"]

    records, problems = [], []
    with TestClient(create_app(platform)) as client:
        for (tariff, first), codes in sorted(asked.items()):
            body = {"service_points": codes, "from": str(first), "to": "2026-10-31", "tariff": tariff}
            r = client.post(f"{V1}/service-points/determinants", json=body)
            assert r.status_code == 200, r.text
            records += r.json()["determinants"]
            problems += r.json()["problems"]
    assert [p["code"] for p in problems] == ["usage.no_meter"]  # SP-4; SP-5 has a record of no data
    doc = {"format": FORMAT, "source": "utility A", "timezone": TZ, "determinants": records}

    elsewhere = bootstrap(Settings(database_url=second_url, timezone=TZ, currency="INR"))
    try:
        with elsewhere.sessions() as s:
            build_fleet(s)
            s.execute(delete(ChannelDayHistory))
            s.execute(delete(ChannelDay))
            s.commit()
        with TestClient(create_app(elsewhere)) as client:
            r = client.post(f"{V1}/usage/determinants", json=doc)
            assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
        with elsewhere.sessions() as s:
            assert s.scalar(select(func.count()).select_from(ChannelDay)) == 0
            there = run_bills(s, PERIOD, tz=TZ, currency="INR", usage=ExternalUsage)
            s.commit()
            assert bills_by_agreement(s) == billed
            # the external MDM corrects SA-1's month: the bill billed from the earlier version
            # is stale, and billed again from the new one
            first = next(d for d in records if d["service_point"] == "SP-0")
            corrected = {
                **first,
                "version": "corrected",
                "kwh_total": str(Decimal(first["kwh_total"]) + 10),
                "kwh_by_period": {"total": str(Decimal(first["kwh_total"]) + 10)},
            }
            sent = deliver(s, parse_determinants(json.dumps({**doc, "determinants": [corrected]})))
            assert [a["outcome"] for a in sent.accepted] == ["replaced"]
            stale = stale_bills(s, ExternalUsage(s), period=PERIOD)
            old = s.scalars(
                select(Bill).join(Bill.service_agreement).where(ServiceAgreement.number == "SA-1")
            ).one()
            assert [b.bill_id for b in stale] == [old.id]
            again = rebill(s, stale, tz=TZ, currency="INR", usage=ExternalUsage)
            s.commit()
            (new_id,) = again.new_bills
            assert s.get(Bill, new_id).total_kwh == old.total_kwh + 10 and old.status == "cancelled"
    finally:
        elsewhere.dispose()
    assert there.total_amount == here.total_amount
    assert sorted((e["service_agreement"], e["code"]) for e in there.errors) == [
        ("SA-5", "billing.not_delivered"),
        ("SA-6", "billing.no_data"),
    ]
