"""Reading file parsers (CSV, JSON), the array kernels after them, and ingest-once invariants."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_meter
from meter2cash.core.errors import M2CError
from meter2cash.mdm.formats import detect_format, parse_csv, parse_json
from meter2cash.mdm.formats.readings_checks import group_channel_days, last_wins, misaligned
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.store import MeasurementStore

HEADER = "meter,channel,start,value\n"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
RECEIVED = datetime(2026, 10, 5, tzinfo=UTC)


def codes_by_line(problems) -> dict[int, str]:
    return {p.line: p.code for p in problems}


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_good_rows_parse_to_utc_microseconds_with_file_lines():
    data = (HEADER + "M1,kwh_import_15m,2026-10-01T05:30:00+05:30,1.25\n"
            "M1,kwh_import_15m,2026-10-01T00:15:00Z,0.5\n").encode()  # fmt: skip
    p = parse_csv(data, source="a.csv")
    assert p.problems == [] and p.rows_total == 2 and p.rows_rejected == 0
    assert p.frame["ts_us"].tolist() == [T0_US, T0_US + 900_000_000]
    assert p.frame["value"].tolist() == [1.25, 0.5]
    assert p.frame["line"].tolist() == [2, 3]


def test_csv_each_parse_error_has_its_code_line_and_field():
    data = (
        HEADER
        + "M1,kwh_import_15m,2026-10-01T00:00:00Z,1\n"  # 2 ok
        + "M1,kwh_import_15m,2026-10-01T00:15:00Z\n"  # 3 wrong column count
        + "M1,kwh_import_15m,yesterday,1\n"  # 4 bad timestamp
        + "M1,kwh_import_15m,2026-10-01T00:30:00,1\n"  # 5 naive
        + "M1,kwh_import_15m,2026-10-01T00:45:00Z,abc\n"  # 6 bad value
        + "M1,kwh_import_15m,2026-10-01T01:00:00Z,inf\n"  # 7 non-finite
        + "M1,kwh_import_15m,2026-10-01T01:15:00Z,1,2\n"  # 8 too many columns
    ).encode()
    p = parse_csv(data, source="a.csv")
    assert codes_by_line(p.problems) == {
        3: "ingest.malformed_row",
        4: "ingest.bad_timestamp",
        5: "ingest.naive_timestamp",
        6: "ingest.bad_value",
        7: "ingest.bad_value",
        8: "ingest.malformed_row",
    }
    fields = {p.line: p.field for p in p.problems}
    assert fields[4] == fields[5] == "start" and fields[6] == "value"
    assert p.rows_total == 7 and p.rows_rejected == 6
    assert p.frame["line"].tolist() == [2]
    assert all(pr.source == "a.csv" for pr in p.problems)


def test_csv_bom_blank_lines_and_crlf_keep_line_numbers():
    data = b"\xef\xbb\xbf" + (HEADER + "\r\nM1,kwh_import_15m,2026-10-01T00:00:00Z,1\r\n   \r\n"
                              "M1,kwh_import_15m,bad,1\r\n").encode()  # fmt: skip
    p = parse_csv(data)
    assert p.rows_total == 2
    assert p.frame["line"].tolist() == [3]
    assert codes_by_line(p.problems) == {5: "ingest.bad_timestamp"}


def test_csv_quality_column_and_quoted_fields():
    data = (
        b"meter,channel,start,value,quality\n"
        b'"M,1",kwh_import_15m,2026-10-01T00:00:00Z,1,ESTIMATED\n'
        b"M1,kwh_import_15m,2026-10-01T00:15:00Z,,MISSING\n"
        b"M1,kwh_import_15m,2026-10-01T00:30:00Z,1,bogus\n"
    )
    p = parse_csv(data)
    assert p.frame["meter"].tolist() == ["M,1", "M1"]
    assert p.frame["quality"].tolist() == [2, 1]
    assert np.isnan(p.frame["value"].iloc[1])
    assert codes_by_line(p.problems) == {4: "ingest.bad_value"} and p.problems[0].field == "quality"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"meter,channel,value\nM1,c,1\n", "lacks start"),
        (b"\x00\x01\x02binary", "binary"),
        (b"\xff\xfe\xfa", "not UTF-8"),
    ],
)
def test_csv_whole_file_problems_raise_bad_file(data, match):
    with pytest.raises(M2CError, match=match) as exc:
        parse_csv(data, source="x.csv")
    assert exc.value.code == "ingest.bad_file"


def test_detect_format_by_extension_then_content():
    assert detect_format(b"meter,channel", "a.JSON") == "json"
    assert detect_format(b"\xef\xbb\xbf  {", "") == "json"
    assert detect_format(HEADER.encode(), "drop.txt") == "csv"


# --- JSON ----------------------------------------------------------------------------------------


def test_json_problems_are_located_by_path_and_item_index():
    doc = {
        "source": "hes-1",
        "readings": [
            {
                "meter": "M1",
                "channel": "kwh_import_15m",
                "start": "2026-10-01T00:00:00Z",
                "values": [1, None, "x"],
            },
            {"meter": "M1", "channel": "kwh_import_15m", "start": "2026-10-01T00:00:00", "values": [1, 2]},
            {"meter": "M1", "start": "2026-10-01T00:00:00Z", "values": [1]},
        ],
        "registers": [{"meter": "M1", "channel": "kwh_import_register", "read_at": "bad", "value": 3}],
        "events": [
            {"meter": "M1", "occurred_at": "2026-10-01T01:00:00Z", "code": "101", "category": "power"}
        ],
    }
    p = parse_json(json.dumps(doc).encode(), source="a.json")
    where = {(pr.line, pr.field): pr.code for pr in p.problems}
    assert where == {
        (0, "readings[0].values[2]"): "ingest.bad_value",
        (1, "readings[1].start"): "ingest.naive_timestamp",
        (2, "readings[2].channel"): "ingest.malformed_row",
        (0, "registers[0].read_at"): "ingest.bad_timestamp",
    }
    assert p.declared_source == "hes-1"
    assert p.frame["value"].tolist() == [1.0] and p.frame["step"].tolist() == [0]
    assert [e.code for e in p.events] == ["101"]
    assert p.rows_total == 3 + 2 + 1 + 1 + 1 and p.rows_rejected == 1 + 2 + 1 + 1


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'{"readings": 5}'])
def test_json_whole_file_problems_raise_bad_file(data):
    with pytest.raises(M2CError) as exc:
        parse_json(data)
    assert exc.value.code == "ingest.bad_file"


# --- kernels -------------------------------------------------------------------------------------


def test_misaligned_uses_the_utc_grid_of_each_channel():
    ts = np.array([0, 900, 450, 1800, 3600 + 60], dtype=np.int64) * 1_000_000
    out = misaligned(ts, np.array([900, 900, 900, 3600, 0]))
    assert out.tolist() == [False, False, True, True, False]


def test_last_wins_reports_earlier_different_values_only():
    ch = np.array([1, 1, 1, 2, 1])
    ts = np.array([0, 0, 5, 0, 0])
    v = np.array([1.0, 2.0, 3.0, 4.0, 2.0])
    order, winner, conflict = last_wins(ch, ts, v)
    assert sorted(order[winner].tolist()) == [2, 3, 4]
    assert order[conflict].tolist() == [0]  # row 1 repeats the winning value: not a conflict


def test_group_channel_days_splits_at_utc_midnight():
    ts = (np.array([86_400 - 900, 86_400, 86_400 + 900]) * 1_000_000).astype(np.int64)
    groups = group_channel_days(np.array([7, 7, 7]), ts, np.array([1.0, 2.0, 3.0]), np.array([900, 900, 900]))
    assert list(groups) == [(7, date(1970, 1, 1)), (7, date(1970, 1, 2))]
    assert groups[(7, date(1970, 1, 2))][0].tolist() == [0, 1]


# --- service-level checks ----------------------------------------------------------------------


def test_service_codes_with_line_numbers_and_obis_lookup(session):
    ids = make_meter(session, "M1", {"kwh_import_15m": "2", "kwh_export_15m": "1", "kwh_import_30m": "1"})
    data = (
        HEADER
        + "M1,kwh_import_15m,2026-10-01T00:00:00Z,1.5\n"  # 2 ok, ×2
        + "M1,1.0.2.29.0.255,2026-10-01T00:00:00Z,0.25\n"  # 3 unique OBIS → export channel
        + "M1,1.0.1.29.0.255,2026-10-01T00:00:00Z,1\n"  # 4 OBIS shared by 15m and 30m
        + "M9,kwh_import_15m,2026-10-01T00:00:00Z,1\n"  # 5 unknown meter
        + "M1,kvah_import_15m,2026-10-01T00:00:00Z,1\n"  # 6 unknown channel
        + "M1,kwh_import_15m,2026-10-01T00:07:00Z,1\n"  # 7 misaligned
        + "M1,kwh_import_15m,2026-10-09T00:00:00Z,1\n"  # 8 future
        + "M1,kwh_import_15m,2026-10-01T00:15:00Z,9\n"  # 9 conflict, line 10 wins
        + "M1,kwh_import_15m,2026-10-01T00:15:00Z,3\n"  # 10
    ).encode()
    r = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    assert codes_by_line(r.problems) == {
        4: "ingest.unknown_channel",
        5: "ingest.unknown_meter",
        6: "ingest.unknown_channel",
        7: "ingest.misaligned_timestamp",
        8: "ingest.future_timestamp",
        9: "ingest.conflict_in_file",
    }
    assert "several channels" in next(p.message for p in r.problems if p.line == 4)
    assert (r.rows_total, r.rows_accepted, r.rows_rejected) == (9, 3, 6)
    store = MeasurementStore(session)
    w = store.read_window([ids["kwh_import_15m"], ids["kwh_export_15m"]], T0, T0.replace(hour=1), 900)
    np.testing.assert_allclose(w.raw[0, :2], [3.0, 6.0])  # multiplier 2 applied
    assert w.raw[1, 0] == 0.25


# --- property: split files in any order = one file ----------------------------------------------

readings_sets = st.dictionaries(
    st.integers(min_value=0, max_value=3 * 96 - 1),
    st.integers(min_value=0, max_value=10_000),
    min_size=1,
    max_size=40,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readings=readings_sets, cut=st.integers(min_value=0, max_value=40), reverse=st.booleans())
def test_two_files_in_any_order_store_the_same_arrays_as_one(session, readings, cut, reverse):
    tag = uuid.uuid4().hex[:8]
    one, two = f"A{tag}", f"B{tag}"
    ch_one = make_meter(session, one)["kwh_import_15m"]
    ch_two = make_meter(session, two)["kwh_import_15m"]
    items = list(readings.items())

    def csv(serial: str, part: list[tuple[int, int]]) -> bytes:
        text = "".join(
            f"{serial},kwh_import_15m,{(T0 + timedelta(seconds=s * 900)).isoformat()},{v / 1000}\n"
            for s, v in part
        )
        return (HEADER + text).encode()

    ingest_bytes(session, csv(one, items), filename="all.csv")
    parts = [items[:cut], items[cut:]]
    for part in reversed(parts) if reverse else parts:
        ingest_bytes(session, csv(two, part), filename="part.csv")
    session.commit()
    store = MeasurementStore(session)
    end = datetime(2026, 10, 4, tzinfo=UTC)
    w = store.read_window([ch_one, ch_two], T0, end, 900)
    np.testing.assert_array_equal(w.raw[0], w.raw[1])
    np.testing.assert_array_equal(w.flags[0], w.flags[1])
    assert int((~np.isnan(w.raw[0])).sum()) == len(readings)


def test_a_reading_file_nested_too_deep_is_refused_with_a_code():
    """JSON nested 100,000 deep would exhaust Python's recursion in json.loads."""
    from meter2cash.core.errors import InvalidInput
    from meter2cash.mdm.formats.readings_json import parse_json

    with pytest.raises(InvalidInput) as err:
        parse_json(b"[" * 100_000 + b"]" * 100_000, source="deep.json")
    assert err.value.code == "input.too_deep"


def test_a_master_data_bundle_nested_too_deep_is_refused_with_a_code(tmp_path):
    from meter2cash.core.errors import InvalidInput
    from meter2cash.integration.masterdata_io import read_bundle_path

    path = tmp_path / "deep.json"
    path.write_text('{"persons": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InvalidInput) as err:
        read_bundle_path(path)
    assert err.value.code == "input.too_deep"
