"""The determinants document (docs/formats.md#determinants): good records kept, bad ones named."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from meter2cash.core.errors import InvalidInput
from meter2cash.integration.determinants import records_of, version_of
from meter2cash.mdm.determinants import Determinants
from meter2cash.mdm.tou import TouCalendar
from meter2cash.mdm.usage.format import FORMAT, document, parse_determinants
from meter2cash.mdm.usage.port import UsageBatch, UsageQuery


def record(**changes: Any) -> dict[str, Any]:
    """A good record of three days with two periods."""
    base: dict[str, Any] = {
        "service_point": "SP-1",
        "from": "2026-10-01",
        "to": "2026-10-03",
        "version": "v1",
        "interval_s": 900,
        "tou_periods": ["peak", "normal"],
        "kwh_total": "30.500",
        "kwh_by_period": {"peak": "10.250", "normal": "20.25"},
        "max_demand_kw": "4.2",
        "max_demand_kw_by_period": {"peak": "4.2", "normal": "3"},
        "kvah_total": None,
        "kwh_export": None,
        "estimated_share": "0.010417",
        "missing_share": "0",
        "valid_intervals": 288,
        "daily_kwh": {"first": "2026-10-01", "kwh": ["10", "10.5", "10.000"]},
    }
    base.update(changes)
    return base


def doc(*records: Any, **top: Any) -> bytes:
    body = {
        "format": FORMAT,
        "source": "Other MDM",
        "timezone": "Asia/Kolkata",
        "determinants": list(records),
    }
    body.update(top)
    return json.dumps(body).encode()


def test_a_good_document_reads_exactly():
    parsed = parse_determinants(doc(record(), record(service_point="SP-2", kwh_export="1.001")))
    assert parsed.problems == [] and parsed.source == "Other MDM" and parsed.timezone == "Asia/Kolkata"
    (i, a), (j, b) = parsed.records
    assert (i, j) == (0, 1)
    assert a.service_point == "SP-1" and a.from_ == date(2026, 10, 1) and a.to == date(2026, 10, 3)
    assert a.kwh_total == Decimal("30.500") and a.kwh_by_period["normal"] == Decimal("20.25")
    assert a.max_demand_kw_by_period == {"peak": Decimal("4.2"), "normal": Decimal(3)}
    assert a.daily_kwh.kwh == [Decimal(10), Decimal("10.5"), Decimal("10.000")]
    assert a.kwh_export is None and b.kwh_export == Decimal("1.001")
    assert a.days == 3
    # written back as the document carries it: decimal strings, "from" by its name
    out = a.to_json()
    assert (
        out["from"] == "2026-10-01" and out["kwh_total"] == "30.500" and out["estimated_share"] == "0.010417"
    )


def test_bad_records_are_named_and_good_ones_kept():
    parsed = parse_determinants(
        doc(
            record(),
            record(kwh_total=30.5),  # a float: refused
            record(kwh_by_period={"peak": "10.250", "normal": "20.000"}),  # adds up to 30.25
            {"service_point": "SP-9"},
            record(service_point="SP-4", max_demand_kw="4.2005"),
            record(service_point="SP-5", to="2026-10-02"),  # three daily values for two days
            record(service_point="SP-6", tou_periods=["peak", "peak"]),
            record(service_point="SP-7", interval_s=700),
            record(service_point="SP-8", kwh_total="-1"),
            "not a record",
            record(service_point="SP-3", kwh_total=30, kwh_by_period={"peak": 10, "normal": "20.000"}),
        )
    )
    assert [i for i, _ in parsed.records] == [0, 10]
    by_line: dict[int, list[tuple[str, str]]] = {}
    for p in parsed.problems:
        assert p.line is not None
        by_line.setdefault(p.line, []).append((p.code, p.field or ""))
    assert by_line[1] == [("usage.bad_number", "determinants[1].kwh_total")]
    assert by_line[2] == [("usage.inconsistent", "determinants[2].kwh_by_period")]
    assert ("usage.bad_record", "determinants[3].from") in by_line[3]
    assert ("usage.bad_record", "determinants[3].kwh_total") in by_line[3]
    assert by_line[4] == [("usage.bad_number", "determinants[4].max_demand_kw")]
    assert by_line[5] == [("usage.inconsistent", "determinants[5].daily_kwh")]
    assert by_line[6] == [("usage.inconsistent", "determinants[6].tou_periods")]
    assert by_line[7] == [("usage.inconsistent", "determinants[7].interval_s")]
    assert by_line[8] == [("usage.bad_number", "determinants[8].kwh_total")]
    assert by_line[9] == [("usage.bad_record", "determinants[9]")]
    assert parsed.total == 11
    float_problem = next(p for p in parsed.problems if p.line == 1)
    assert "decimal string" in float_problem.message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (doc(format="meter2cash.determinants/2"), "format must be"),
        (doc(timezone="Mars/Olympus"), "IANA"),
        (doc(source=""), "source"),
        (doc(determinants={"a": 1}), "list"),
        (doc(extra=1), "unknown fields"),
    ],
)
def test_a_document_that_is_not_one_is_refused_whole(data, says):
    with pytest.raises(InvalidInput) as exc:
        parse_determinants(data)
    assert exc.value.code == "usage.bad_document" and says in exc.value.message


def test_a_document_nested_too_deep_is_refused_before_parsing():
    with pytest.raises(InvalidInput) as exc:
        parse_determinants(b"[" * 100 + b"]" * 100)
    assert exc.value.code == "input.too_deep"


def _batch_of_two() -> tuple[UsageQuery, UsageBatch]:
    tou = TouCalendar.model_validate(
        {
            "default_period": "normal",
            "periods": [{"name": "peak", "start": "18:00", "end": "22:00"}],
        }
    )
    q = UsageQuery(
        service_point_ids=[7, 8],
        service_point_codes=["SP-7", "SP-8"],
        first=[date(2026, 10, 1), date(2026, 10, 2)],
        last=[date(2026, 10, 2), date(2026, 10, 2)],
        start=datetime(2026, 9, 30, 18, 30, tzinfo=UTC),
        end=datetime(2026, 10, 2, 18, 30, tzinfo=UTC),
        tz="Asia/Kolkata",
        tou=tou,
        period_names=tou.period_names,
        demand_interval_s=1800,
    )
    det = Determinants(
        kwh_total=np.array([3.0008, 2.5]),
        kwh_by_period=np.array([[2.0003, 1.0005], [2.5, 0.0]]),  # normal, peak
        max_demand_kw=np.array([1.2345, 0.5]),
        max_demand_kw_by_period=np.array([[1.2345, 0.9995], [0.5, 0.0]]),
        estimated_share=np.array([1 / 192, 0.0]),
        missing_share=np.array([0.0, 1e-9]),
    )
    batch = UsageBatch(
        rows=np.array([0, 1]),
        interval_s=900,
        det=det,
        valid=np.array([192, 96]),
        days=["2026-10-01", "2026-10-02"],
        daily_kwh=np.array([[1.0004, 2.0004], [0.0, 2.5]]),
        kvah_total=np.array([3.2, 2.6]),
        versions=[{"channels": [1], "days": 3, "sum": 3}, {"channels": [2], "days": 3, "sum": 4}],
    )
    return q, batch


def test_records_written_share_the_total_out_as_rating_does():
    q, batch = _batch_of_two()
    (r0, a), (r1, b) = records_of(q, batch)
    assert (r0, r1) == (0, 1)
    # 3.0008 kWh is 3001 Wh; the periods' 2000.3 and 1000.5 Wh floor to 3000 and the Wh left goes
    # to the larger remainder (each rounded on its own they would add up to 3.000)
    assert a["kwh_total"] == "3.001" and a["kwh_by_period"] == {"normal": "2.000", "peak": "1.001"}
    assert a["tou_periods"] == ["normal", "peak"] and a["demand_interval_s"] == 1800
    assert a["max_demand_kw"] == "1.234" and a["max_demand_kw_by_period"] == {
        "normal": "1.234",
        "peak": "1.000",
    }
    assert a["kvah_total"] == "3.200" and a["kwh_export"] is None
    assert a["estimated_share"] == "0.005208" and b["missing_share"] == "0.000001"
    assert a["daily_kwh"] == {"first": "2026-10-01", "kwh": ["1.000", "2.000"]}
    assert b["from"] == b["to"] == "2026-10-02" and b["daily_kwh"] == {
        "first": "2026-10-02",
        "kwh": ["2.500"],
    }
    assert a["version"] == version_of({"channels": [1], "days": 3, "sum": 3}) != b["version"]
    # what is written reads back
    parsed = parse_determinants(json.dumps(document("meter2cash", "Asia/Kolkata", [a, b])))
    assert parsed.problems == [] and len(parsed.records) == 2
    assert parsed.records[0][1].to_json() == {**a, "kwh_total": "3.001"}


def test_records_without_a_calendar_have_one_period_total():
    q, batch = _batch_of_two()
    q = UsageQuery(
        **{**{f: getattr(q, f) for f in q.__dataclass_fields__}, "tou": None, "period_names": ["all"]}
    )
    (_, a), _ = records_of(q, batch)
    assert a["tou_periods"] == ["total"]
    assert a["kwh_by_period"] == {"total": "3.001"} and a["max_demand_kw_by_period"] == {"total": "1.234"}
