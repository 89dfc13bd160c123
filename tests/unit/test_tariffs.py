"""The tariff file format: the examples load; every error names the file and the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meter2cash.cis.tariffs.loader import (
    TariffFileError,
    load_tariff_file,
    parse_tariff,
    stored_version,
    version_json,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"

BASE = """
code = "T-1"
currency = "INR"
[[versions]]
effective_from = 2026-04-01
[versions.energy]
slabs = [{ upto = "100", rate = "3" }, { rate = "4" }]
"""


def fields_of(text: str) -> dict[str, str]:
    with pytest.raises(TariffFileError) as info:
        parse_tariff(text, "t.toml")
    assert "t.toml" in info.value.message
    return {p.field or "": p.message for p in info.value.problems}


@pytest.mark.parametrize("name", ["res-lt1", "com-tou", "res-pp", "ind-kvah", "res-nm"])
def test_examples_load(name):
    d = load_tariff_file(EXAMPLES / f"{name}.toml")
    v = d.versions[0]
    assert v.code == d.code and v.currency == "INR" and v.rounding is not None


def test_rates_are_decimals():
    d = parse_tariff(BASE)
    slabs = d.versions[0].energy.slabs
    assert slabs[0].upto == Decimal("100") and isinstance(slabs[1].rate, Decimal)


def test_float_is_refused_with_a_hint_to_quote():
    f = fields_of(BASE.replace('rate = "4"', "rate = 4.5"))
    assert "quote" in f["versions[0].energy.slabs[1].rate"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (('currency = "INR"', 'currency = "rupees"'), "currency", "ISO 4217"),
        (("code = ", "kode = "), "code", "Field required"),
        (('{ rate = "4" }', '{ upto = "50", rate = "4" }'), "versions[0].energy.slabs", "last slab"),
        (('upto = "100"', 'upto = "0"'), "versions[0].energy.slabs", "increasing"),
        (('upto = "100"', 'upto = "1.0001"'), "versions[0].energy.slabs[0].upto", "3 decimal"),
        (('rate = "3"', 'rate = "abc"'), "versions[0].energy.slabs[0].rate", "not a decimal"),
        (
            ("effective_from = 2026-04-01", "effective_from = 2026-04-01\nfoo = 1"),
            "versions[0].foo",
            "unknown",
        ),
        (("effective_from = 2026-04-01", 'effective_from = "April"'), "versions[0].effective_from", "date"),
    ],
)
def test_each_error_names_its_field(change, field, words):
    f = fields_of(BASE.replace(*change))
    assert field in f, f
    assert words.lower() in f[field].lower()


def test_tou_period_errors():
    tou = (
        BASE + '[versions.tou]\nperiods = [{ name = "peak", start = "18:00", end = "25:00", adder = "1" }]\n'
    )
    assert "out of range" in fields_of(tou)["versions[0].tou.periods[0].end"]
    both = (
        BASE
        + "[versions.tou]\n"
        + 'periods = [{ name = "p", start = "18:00", end = "22:00", adder = "1", rate = "2" }]\n'
    )
    assert "exactly one" in fields_of(both)["versions[0].tou.periods[0]"]
    no_default = BASE.replace(
        '[versions.energy]\nslabs = [{ upto = "100", rate = "3" }, { rate = "4" }]\n', ""
    )
    no_default += '[versions.tou]\nperiods = [{ name = "p", start = "18:00", end = "22:00", rate = "2" }]\n'
    assert "default_rate" in fields_of(no_default)["versions[0].tou"]
    hol = (
        BASE
        + '[versions.tou]\nholidays = "XX"\n'
        + 'periods = [{ name = "p", start = "1:00", end = "2:00", adder = "1" }]\n'
    )
    assert "holiday" in fields_of(hol)["versions[0].tou"]


def test_tax_on_unknown_component():
    text = BASE + '[[versions.taxes]]\ncode = "ED"\nname = "Duty"\npercent = "5"\non = ["energy", "vat"]\n'
    assert "versions[0].taxes[0].on[1]" in fields_of(text)


def test_overlapping_versions_are_refused():
    text = BASE + '[[versions]]\neffective_from = 2026-10-01\n[versions.energy]\nslabs = [{ rate = "5" }]\n'
    assert "effective_to" in fields_of(text)["versions"]
    ok = text.replace("effective_from = 2026-04-01", "effective_from = 2026-04-01\neffective_to = 2026-09-30")
    d = parse_tariff(ok)
    assert [str(v.effective_from) for v in d.versions] == ["2026-04-01", "2026-10-01"]
    assert d.version_on(d.versions[1].effective_from) is d.versions[1]


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(TariffFileError) as info:
        parse_tariff("code = ", "broken.toml")
    assert info.value.code == "tariff.syntax" and "broken.toml" in info.value.message
    with pytest.raises(TariffFileError) as info:
        load_tariff_file(tmp_path / "nope.toml")
    assert info.value.code == "tariff.unreadable"


# --- what a tariff may hold: every problem of a file at once, each with its field and code -----


def problems_of(text: str, source: str = "t.toml") -> set[tuple[str, str]]:
    with pytest.raises(TariffFileError) as info:
        parse_tariff(text, source)
    assert all(p.source == source for p in info.value.problems)
    for p in info.value.problems:
        assert f"{p.field}: {p.message} ({p.code})" in info.value.message
    return {(p.field or "", p.code) for p in info.value.problems}


def test_nonsense_is_refused_all_at_once():
    """The file that loaded before: a negative fixed charge and rate, a 500,000 % tax, QQQ."""
    text = """
code = "T-1"
currency = "QQQ"
[[versions]]
effective_from = 2026-04-01
[versions.fixed]
per_month = "-50"
[versions.energy]
slabs = [{ upto = "100", rate = "-3" }, { rate = "4" }]
[[versions.taxes]]
code = "ED"
name = "Electricity duty"
percent = "500000"
on = ["energy"]
"""
    assert problems_of(text, "nonsense.toml") == {
        ("currency", "tariff.unknown_currency"),
        ("versions[0].fixed.per_month", "tariff.negative_amount"),
        ("versions[0].energy.slabs[0].rate", "tariff.negative_amount"),
        ("versions[0].taxes[0].percent", "tariff.bad_percent"),
    }


@pytest.mark.parametrize("currency", ["QQQ", "inr", "XX", "EURO"])
def test_currency_is_an_iso_4217_code(currency):
    assert problems_of(BASE.replace('"INR"', f'"{currency}"')) == {("currency", "tariff.unknown_currency")}


# A version with every priced component; each field below is set to a negative value in turn.
FULL = """
code = "T-FULL"
currency = "INR"
[[versions]]
effective_from = 2026-04-01
prepaid_discount_per_kwh = "0.25"
[versions.fixed]
per_month = "50"
per_day = "1"
per_kw_month = "20"
per_kva_month = "30"
[versions.energy]
slabs = [{ upto = "100", rate = "3.00" }, { rate = "4.00" }]
[versions.tou]
periods = [{ name = "peak", start = "18:00", end = "22:00", adder = "1.50" }]
[versions.demand]
rate_per_kw = "250"
by_period = { peak = "100" }
[versions.minimum]
per_month = "100"
[versions.fuel_adjustment]
per_kwh = { "2026-10" = "0.35" }
[versions.net_metering]
export_rate = "2.25"
max_bank_kwh = "500"
"""


def test_the_full_version_loads():
    v = parse_tariff(FULL).versions[0]
    assert v.tou.periods[0].adder == Decimal("1.50") and v.fuel_adjustment.per_kwh["2026-10"] == Decimal(
        "0.35"
    )


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ('per_month = "50"', "fixed.per_month"),
        ('per_day = "1"', "fixed.per_day"),
        ('per_kw_month = "20"', "fixed.per_kw_month"),
        ('per_kva_month = "30"', "fixed.per_kva_month"),
        ('rate = "3.00"', "energy.slabs[0].rate"),
        ('upto = "100"', "energy.slabs[0].upto"),
        ('rate_per_kw = "250"', "demand.rate_per_kw"),
        ('peak = "100"', "demand.by_period.peak"),
        ('per_month = "100"', "minimum.per_month"),
        ('export_rate = "2.25"', "net_metering.export_rate"),
        ('max_bank_kwh = "500"', "net_metering.max_bank_kwh"),
        ('prepaid_discount_per_kwh = "0.25"', "prepaid_discount_per_kwh"),
    ],
)
def test_a_charge_is_never_negative(given, field):
    key, value = given.split(" = ")
    text = FULL.replace(given, f'{key} = "-{value.strip(chr(34))}"', 1)
    assert problems_of(text) == {(f"versions[0].{field}", "tariff.negative_amount")}


@pytest.mark.parametrize(
    ("given", "negative"),
    [('adder = "1.50"', 'adder = "-0.75"'), ('"2026-10" = "0.35"', '"2026-10" = "-0.35"')],
)
def test_a_tou_adder_and_a_fuel_adjustment_may_be_credits(given, negative):
    v = parse_tariff(FULL.replace(given, negative)).versions[0]
    assert v.tou.periods[0].adder < 0 or v.fuel_adjustment.per_kwh["2026-10"] < 0


@pytest.mark.parametrize(
    ("given", "too_much", "most", "field"),
    [
        ('adder = "1.50"', 'adder = "-3.01"', 'adder = "-3"', "tou.periods[0].adder"),
        ('"2026-10" = "0.35"', '"2026-10" = "-3.5"', '"2026-10" = "-3"', "fuel_adjustment.per_kwh.2026-10"),
        ("prepaid_discount_per_kwh = \"0.25\"", "prepaid_discount_per_kwh = \"3.25\"",
         "prepaid_discount_per_kwh = \"3\"", "prepaid_discount_per_kwh"),
    ],
)  # fmt: skip
def test_a_credit_per_kwh_is_at_most_the_lowest_energy_rate(given, too_much, most, field):
    # the lowest energy rate of FULL is 3.00 per kWh: a credit of 3.00 is the most
    assert problems_of(FULL.replace(given, too_much)) == {
        (f"versions[0].{field}", "tariff.credit_exceeds_rate")
    }
    assert parse_tariff(FULL.replace(given, most))


TAX = '[[versions.taxes]]\ncode = "ED"\nname = "Duty"\npercent = "{}"\non = ["energy"]\n'


@pytest.mark.parametrize(("section", "bad", "good"), [
    (TAX, "100.0001", "100"),
    ('[versions.demand]\nfloor_percent = "{}"\n', "101", "100"),
    ('[versions.demand]\nratchet_percent = "{}"\n', "-1", "0"),
    ('[versions.payment_terms]\nlate_percent = "{}"\n', "25.5", "25"),
    ('[versions.payment_terms]\nprompt_percent = "{}"\n', "30", "2.5"),
    ('[versions.power_factor]\npenalty_percent = "{}"\n', "150", "1"),
])  # fmt: skip
def test_percentages_are_bounded(section, bad, good):
    head, key = section.split("\n")[0], section.split("\n")[-2].split(" = ")[0]
    if head == "[[versions.taxes]]":
        where = "versions[0].taxes[0].percent"
        section = section.replace('percent = "{}"', 'percent = "VALUE"')
    else:
        where = f"versions[0].{head.strip('[]').removeprefix('versions.')}.{key}"
        section = section.replace('"{}"', '"VALUE"')
    assert problems_of(BASE + section.replace("VALUE", bad)) == {(where, "tariff.bad_percent")}
    assert parse_tariff(BASE + section.replace("VALUE", good))


@pytest.mark.parametrize(
    ("currency", "money_ok", "money_bad"),
    [("INR", "50.50", "50.505"), ("JPY", "500", "500.5"), ("KWD", "1.125", "1.1255")],
)
def test_money_has_the_currency_minor_unit_and_rates_up_to_six_places(currency, money_ok, money_bad):
    # ISO 4217 minor units: INR 2 (paise), JPY 0, KWD 3 (fils)
    text = (
        BASE.replace('"INR"', f'"{currency}"')
        + '[versions.fixed]\nper_month = "VALUE"\nper_day = "0.34810"\n'
    )
    v = parse_tariff(text.replace("VALUE", money_ok)).versions[0]
    assert v.fixed.per_month == Decimal(money_ok) and v.fixed.per_day == Decimal("0.34810")
    assert problems_of(text.replace("VALUE", money_bad)) == {
        ("versions[0].fixed.per_month", "tariff.too_many_places")
    }
    minimum = BASE.replace('"INR"', f'"{currency}"') + f'[versions.minimum]\nper_month = "{money_bad}"\n'
    assert problems_of(minimum) == {("versions[0].minimum.per_month", "tariff.too_many_places")}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1e999", "tariff.not_a_number"),
        ("1.34e308", "tariff.not_a_number"),
        ("NaN", "tariff.not_a_number"),
        ("Infinity", "tariff.not_a_number"),
        ("1234567", "tariff.too_many_digits"),  # a rate per kWh has at most 6 digits
        ("3.1234567", "tariff.too_many_places"),
        ("9" * 40, "tariff.too_many_digits"),
        ("9" * 70, "tariff.not_a_number"),
    ],
)
def test_rates_have_bounded_digits(value, code):
    text = BASE.replace('rate = "3"', f'rate = "{value}"')
    assert problems_of(text) == {("versions[0].energy.slabs[0].rate", code)}


def test_a_monthly_amount_has_at_most_twelve_digits():
    text = BASE + '[versions.fixed]\nper_month = "VALUE"\n'
    assert parse_tariff(text.replace("VALUE", "999999999999")).versions[0].fixed.per_month == 999_999_999_999
    assert problems_of(text.replace("VALUE", "1000000000000")) == {
        ("versions[0].fixed.per_month", "tariff.too_many_digits")
    }


def test_structural_codes_slabs_versions_and_dates():
    assert problems_of(BASE.replace('upto = "100"', 'upto = "0"')) == {
        ("versions[0].energy.slabs", "tariff.slab_order")
    }
    two = BASE + '[[versions]]\neffective_from = 2026-10-01\n[versions.energy]\nslabs = [{ rate = "5" }]\n'
    assert problems_of(two) == {("versions", "tariff.version_overlap")}
    assert problems_of(BASE.replace("2026-04-01", "0001-01-01")) == {
        ("versions[0].effective_from", "tariff.bad_date")
    }
    assert problems_of(BASE.replace("effective_from", "effective_from = 2026-04-01\nfoo", 1).replace(
        "foo = 2026-04-01", "foo = 1"
    )) == {("versions[0].foo", "tariff.unknown_field")}  # fmt: skip
    assert problems_of(BASE.replace('rate = "4"', "rate = 4.5")) == {
        ("versions[0].energy.slabs[1].rate", "tariff.float")
    }


def test_problems_of_every_version_are_reported_together():
    two = BASE.replace("2026-04-01", "2026-04-01\neffective_to = 2026-09-30") + (
        '[[versions]]\neffective_from = 2026-10-01\nprepaid_discount_per_kwh = "9"\n'
        '[versions.fixed]\nper_month = "10.001"\n[versions.energy]\nslabs = [{ rate = "5" }]\n'
    )
    broken = two.replace('rate = "4"', "rate = 4.5")
    assert problems_of(broken) == {
        ("versions[0].energy.slabs[1].rate", "tariff.float"),
        ("versions[1].fixed.per_month", "tariff.too_many_places"),
        ("versions[1].prepaid_discount_per_kwh", "tariff.credit_exceeds_rate"),
    }


def test_a_stored_definition_is_checked_when_read_back():
    good = version_json(parse_tariff(BASE).versions[0])
    assert stored_version(good).energy is not None
    for change, field, code in [
        ({"fixed": {"per_month": "-50"}}, "fixed.per_month", "tariff.negative_amount"),
        ({"currency": "QQQ"}, "currency", "tariff.unknown_currency"),
        ({"taxes": [{"code": "ED", "name": "d", "percent": "500000", "on": ["energy"]}]}, "taxes[0].percent",
         "tariff.bad_percent"),
        ({"fixed": {"per_month": "50.505"}}, "fixed.per_month", "tariff.too_many_places"),
    ]:  # fmt: skip
        with pytest.raises(TariffFileError) as info:
            stored_version({**good, **change}, "tariff T-1 from 2026-04-01")
        assert info.value.code == "tariff.invalid_stored"
        assert [(p.field, p.code) for p in info.value.problems] == [(field, code)]
        assert "tariff T-1 from 2026-04-01" in info.value.message


def test_a_file_that_is_not_utf8(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(BASE.replace("T-1", "T-\xe9").encode("latin-1"))
    with pytest.raises(TariffFileError) as info:
        load_tariff_file(bad)
    assert info.value.code == "tariff.not_utf8" and str(bad) in info.value.message
