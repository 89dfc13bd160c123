"""The reading-type catalogue holds the IS 15959 quantities the head-end reports."""

import pytest

from meter2cash.mdm.reading_types import BY_CODE, CATALOGUE, reading_kind

#: IS 15959 instantaneous profile, block load profile and billing profile parameters, written
#: from the standard's tables: code, OBIS, unit, kind.
EXPECTED = [
    ("kw_instant", "1.0.1.7.0.255", "kW", "instantaneous"),
    ("kva_instant", "1.0.9.7.0.255", "kVA", "instantaneous"),
    ("voltage_instant", "1.0.12.7.0.255", "V", "instantaneous"),
    ("current_instant", "1.0.11.7.0.255", "A", "instantaneous"),
    ("current_neutral_instant", "1.0.91.7.0.255", "A", "instantaneous"),
    ("pf_instant", "1.0.13.7.0.255", "PF", "instantaneous"),
    ("voltage_r_instant", "1.0.32.7.0.255", "V", "instantaneous"),
    ("voltage_y_instant", "1.0.52.7.0.255", "V", "instantaneous"),
    ("voltage_b_instant", "1.0.72.7.0.255", "V", "instantaneous"),
    ("current_r_instant", "1.0.31.7.0.255", "A", "instantaneous"),
    ("current_y_instant", "1.0.51.7.0.255", "A", "instantaneous"),
    ("current_b_instant", "1.0.71.7.0.255", "A", "instantaneous"),
    ("pf_r_instant", "1.0.33.7.0.255", "PF", "instantaneous"),
    ("pf_y_instant", "1.0.53.7.0.255", "PF", "instantaneous"),
    ("pf_b_instant", "1.0.73.7.0.255", "PF", "instantaneous"),
    ("pf_average_register", "1.0.13.0.0.255", "PF", "register"),
    ("kw_md_register", "1.0.1.6.0.255", "kW", "register"),
    ("kva_md_register", "1.0.9.6.0.255", "kVA", "register"),
    ("md_reset_count", "0.0.0.1.0.255", "count", "register"),
    ("voltage_avg_15m", "1.0.12.27.0.255", "V", "interval"),
    ("voltage_avg_30m", "1.0.12.27.0.255", "V", "interval"),
    ("current_avg_15m", "1.0.11.27.0.255", "A", "interval"),
    ("current_avg_30m", "1.0.11.27.0.255", "A", "interval"),
    ("kwh_import_register", "1.0.1.8.0.255", "kWh", "register"),
    ("kwh_import_30m", "1.0.1.29.0.255", "kWh", "interval"),
]


@pytest.mark.parametrize(("code", "obis", "unit", "kind"), EXPECTED)
def test_catalogue_has_the_is15959_quantity(code: str, obis: str, unit: str, kind: str) -> None:
    spec = BY_CODE[code]
    assert (spec.obis, spec.unit, reading_kind(spec)) == (obis, unit, kind)


def test_block_averages_have_their_block_length() -> None:
    assert [BY_CODE[c].interval_s for c in ("voltage_avg_15m", "voltage_avg_30m")] == [900, 1800]


def test_codes_are_unique() -> None:
    assert len({s.code for s in CATALOGUE}) == len(CATALOGUE)
