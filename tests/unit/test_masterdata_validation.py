"""Validation of single master-data records: every problem code, with its line and field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.integration.masterdata_io import section_from_csv, sections_from_json
from meter2cash.integration.masterdata_spec import ENTITY, MAX_LOAD, to_json, validate_record


def check(entity: str, raw, line: int = 7):
    return validate_record(ENTITY[entity], raw, line=line, source=entity)


def codes(entity: str, raw) -> set[tuple[str, int | None, str | None]]:
    rec, problems = check(entity, raw)
    assert rec is None
    return {(p.code, p.line, p.field) for p in problems}


AGREEMENT = {
    "number": "SA-1",
    "account": "ACC-1",
    "service_point": "SP-1",
    "tariff_code": "RES-LT1",
    "payment_mode": "prepaid",
    "sanctioned_load_kw": "5.5",
    "start_date": "2026-01-01",
}


def test_a_good_record_comes_back_typed():
    rec, problems = check("service_agreements", {**AGREEMENT, "contract_demand_kva": 10})
    assert problems == []
    assert rec is not None
    assert rec["sanctioned_load_kw"] == Decimal("5.5")
    assert rec["contract_demand_kva"] == Decimal(10)
    assert rec["start_date"] == date(2026, 1, 1)
    assert rec["payment_mode"] == "prepaid"


def test_missing_required_fields_are_each_reported():
    assert codes("service_agreements", {"number": "SA-1", "tariff_code": " "}) == {
        ("masterdata.missing_field", 7, "account"),
        ("masterdata.missing_field", 7, "service_point"),
        ("masterdata.missing_field", 7, "tariff_code"),
        ("masterdata.missing_field", 7, "start_date"),
    }


def test_a_record_that_is_not_an_object():
    assert codes("feeders", ["F1"]) == {("masterdata.not_an_object", 7, None)}


def test_enum_fields_list_the_allowed_values():
    rec, problems = check("accounts", {"number": "A1", "person": "P1", "customer_class": "royal"})
    assert rec is None
    assert [(p.code, p.field) for p in problems] == [("masterdata.invalid_choice", "customer_class")]
    assert "residential" in problems[0].data["allowed"]
    assert codes("service_agreements", {**AGREEMENT, "payment_mode": "barter"}) == {
        ("masterdata.invalid_choice", 7, "payment_mode")
    }


@pytest.mark.parametrize("bad", [5.5, "five", "-1", "1.0001", "NaN", True])
def test_bad_decimals_are_refused(bad):
    assert codes("service_agreements", {**AGREEMENT, "sanctioned_load_kw": bad}) == {
        ("masterdata.invalid_decimal", 7, "sanctioned_load_kw")
    }


def test_floats_are_refused_with_a_hint_to_use_strings():
    _, problems = check("transformers", {"code": "DT1", "feeder": "F1", "capacity_kva": 250.5})
    assert "strings" in problems[0].message


def test_dates_and_periods():
    assert codes("service_agreements", {**AGREEMENT, "start_date": "01/02/2026"}) == {
        ("masterdata.invalid_date", 7, "start_date")
    }
    assert codes("service_agreements", {**AGREEMENT, "end_date": "2025-12-31"}) == {
        ("masterdata.invalid_period", 7, "end_date")
    }


def test_installation_timestamps_need_an_offset():
    inst = {"meter": "M1", "service_point": "SP-1", "installed_at": "2026-01-05T10:30:00"}
    assert codes("installations", inst) == {("masterdata.naive_datetime", 7, "installed_at")}
    assert codes("installations", {**inst, "installed_at": "yesterday"}) == {
        ("masterdata.invalid_datetime", 7, "installed_at")
    }
    rec, _ = check("installations", {**inst, "installed_at": "2026-01-05T10:30:00+05:30"})
    assert rec is not None and rec["installed_at"] == datetime(2026, 1, 5, 5, 0, tzinfo=UTC)
    bad_removal = {**inst, "installed_at": "2026-01-05T10:30:00Z", "removed_at": "2026-01-01T00:00:00Z"}
    assert codes("installations", bad_removal) == {("masterdata.invalid_period", 7, "removed_at")}


def test_text_fields_too_long_or_of_the_wrong_type():
    assert codes("feeders", {"code": "F" * 65}) == {("masterdata.too_long", 7, "code")}
    assert codes("feeders", {"code": "F1", "name": {"x": 1}}) == {("masterdata.invalid_value", 7, "name")}
    rec, _ = check("premises", {"code": "PR1", "postcode": 560038})
    assert rec is not None and rec["postcode"] == "560038"


def test_channels_from_a_list_or_from_csv_text():
    rec, _ = check("meters", {"serial": "M1", "channels": "kwh_import_15m:2.5;kwh_import_register"})
    assert rec is not None
    assert rec["channels"] == (
        {"reading_type": "kwh_import_15m", "multiplier": Decimal("2.5")},
        {"reading_type": "kwh_import_register", "multiplier": Decimal(1)},
    )
    assert codes("meters", {"serial": "M1", "channels": [{"reading_type": "kwh_magic"}]}) == {
        ("masterdata.unknown_reading_type", 7, "channels")
    }
    assert codes("meters", {"serial": "M1", "channels": "kwh_import_15m;kwh_import_15m"}) == {
        ("masterdata.invalid_channels", 7, "channels")
    }
    assert codes(
        "meters", {"serial": "M1", "channels": [{"reading_type": "kwh_import_15m", "multiplier": "0"}]}
    ) == {("masterdata.invalid_channels", 7, "channels")}
    assert codes("meters", {"serial": "M1", "phase": "two"}) == {("masterdata.invalid_choice", 7, "phase")}


def test_json_sections_report_unknown_entities_and_non_arrays():
    sections, problems = sections_from_json(
        {"$schema": "x", "feeders": [{"code": "F1"}, {"code": "F2"}], "widgets": [], "meters": {}}
    )
    assert [line for line, _ in sections["feeders"].records] == [1, 2]
    assert {(p.code, p.source) for p in problems} == {
        ("masterdata.unknown_entity", "widgets"),
        ("masterdata.not_a_list", "meters"),
    }


def test_csv_line_numbers_count_the_header_and_blank_cells_are_not_given():
    text = 'code,name,substation\nF1,"North, 1",\n\nF2,,S2\n'
    section = section_from_csv("feeders", text, "feeders.csv")
    assert section.records == [
        (2, {"code": "F1", "name": "North, 1", "substation": ""}),
        (4, {"code": "F2", "name": "", "substation": "S2"}),
    ]
    rec, _ = validate_record(ENTITY["feeders"], section.records[1][1], line=4, source="feeders.csv")
    assert rec == {"code": "F2", "substation": "S2"}


@given(st.decimals(min_value=0, max_value=MAX_LOAD, places=3, allow_nan=False))
def test_decimals_round_trip_through_their_json_form(d):
    rec, problems = check("service_agreements", {**AGREEMENT, "sanctioned_load_kw": to_json(d)})
    assert problems == []
    assert rec is not None and rec["sanctioned_load_kw"] == d


# --- ranges, digits, dates and tariff references ------------------------------------------------


@pytest.mark.parametrize("field", ["sanctioned_load_kw", "contract_demand_kva"])
def test_a_load_is_at_most_a_million(field):
    assert codes("service_agreements", {**AGREEMENT, field: "99999999999"}) == {
        ("masterdata.out_of_range", 7, field)
    }
    assert codes("service_agreements", {**AGREEMENT, field: "1000000.001"}) == {
        ("masterdata.out_of_range", 7, field)
    }
    rec, problems = check("service_agreements", {**AGREEMENT, field: "1000000"})
    assert problems == [] and rec is not None and rec[field] == Decimal(1_000_000)


def test_transformer_capacity_and_multipliers_are_bounded():
    assert codes("transformers", {"code": "DT1", "feeder": "F1", "capacity_kva": "2000000"}) == {
        ("masterdata.out_of_range", 7, "capacity_kva")
    }
    channels = [{"reading_type": "kwh_import_15m", "multiplier": "5000000"}]
    assert codes("meters", {"serial": "M1", "channels": channels}) == {
        ("masterdata.out_of_range", 7, "channels")
    }


@pytest.mark.parametrize("bad", ["1e3", "1E+999", "Infinity", "1" + "0" * 12, " 12 kWh"])
def test_decimals_are_plain_with_at_most_twelve_digits(bad):
    inst = {"meter": "M1", "service_point": "SP-1", "installed_at": "2026-01-05T10:30:00Z"}
    assert codes("installations", {**inst, "install_read_kwh": bad}) == {
        ("masterdata.invalid_decimal", 7, "install_read_kwh")
    }
    rec, _ = check("installations", {**inst, "install_read_kwh": "999999999999.999"})
    assert rec is not None and rec["install_read_kwh"] == Decimal("999999999999.999")


@pytest.mark.parametrize("day", ["0001-01-01", "1969-12-31", "2200-01-01", "9999-12-31"])
def test_dates_lie_in_the_sane_window(day):
    assert codes("service_agreements", {**AGREEMENT, "start_date": day}) == {
        ("masterdata.date_out_of_range", 7, "start_date")
    }
    ends_later = {**AGREEMENT, "start_date": "1970-01-01", "end_date": day}
    assert ("masterdata.date_out_of_range", 7, "end_date") in codes("service_agreements", ends_later)


@pytest.mark.parametrize(
    "ts", ["0001-01-01T00:00:00+05:30", "9999-12-31T23:00:00-05:00", "2200-01-01T00:00:00Z"]
)
def test_timestamps_lie_in_the_sane_window_without_overflow(ts):
    inst = {"meter": "M1", "service_point": "SP-1", "installed_at": ts}
    assert codes("installations", inst) == {("masterdata.date_out_of_range", 7, "installed_at")}
    later = {**inst, "installed_at": "2026-01-05T10:30:00Z", "removed_at": ts}
    assert ("masterdata.date_out_of_range", 7, "removed_at") in codes("installations", later)


def test_terms_are_held_to_the_same_ranges():
    for term, words in [
        ({"effective_from": "2026-01-01", "sanctioned_load_kw": "99999999999"}, "largest"),
        (
            {"effective_from": "2026-01-01", "sanctioned_load_kw": "5", "contract_demand_kva": "1e9"},
            "decimal",
        ),
        ({"effective_from": "1900-01-01", "sanctioned_load_kw": "5"}, "1970-01-01"),
    ]:
        rec, problems = check("service_agreements", {**AGREEMENT, "terms": [term]})
        assert rec is None and [p.field for p in problems] == ["terms"], problems
        assert words in problems[0].message
    assert codes("service_agreements", {**AGREEMENT, "terms": "2026-01-01:99999999999"}) == {
        ("masterdata.out_of_range", 7, "terms")
    }


def test_tariff_codes_must_name_a_loaded_tariff():
    loaded = {"RES-LT1", "RES-PP"}

    def named(raw):
        rec, problems = validate_record(
            ENTITY["service_agreements"], raw, line=3, source="sa", tariffs=loaded
        )
        return rec, {(p.code, p.line, p.field, p.data.get("tariff_code")) for p in problems}

    rec, problems = named(AGREEMENT)
    assert rec is not None and problems == set()
    assert named({**AGREEMENT, "tariff_code": "RES-NOPE"}) == (
        None,
        {("masterdata.unknown_tariff", 3, "tariff_code", "RES-NOPE")},
    )
    terms = [
        {"effective_from": "2026-01-01", "sanctioned_load_kw": "5.5", "tariff_code": "RES-GONE"},
        {"effective_from": "2026-06-01", "sanctioned_load_kw": "5.5", "tariff_code": "RES-LT1"},
    ]
    assert named({**AGREEMENT, "terms": terms})[1] == {("masterdata.unknown_tariff", 3, "terms", "RES-GONE")}
    # every problem of the record at once: a bad load and two unknown tariffs
    everything = {**AGREEMENT, "tariff_code": "X", "sanctioned_load_kw": "-1", "terms": terms}
    assert named(everything)[1] == {
        ("masterdata.invalid_decimal", 3, "sanctioned_load_kw", None),
        ("masterdata.unknown_tariff", 3, "tariff_code", "X"),
        ("masterdata.unknown_tariff", 3, "terms", "RES-GONE"),
    }
