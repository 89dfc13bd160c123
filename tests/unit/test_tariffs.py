"""The tariff file format: the examples load; every error names the file and the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meter2cash.cis.tariffs import TariffFileError, load_tariff_file, parse_tariff

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


@pytest.mark.parametrize("name", ["res-lt1", "com-tou", "res-pp"])
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
        (('currency = "INR"', 'currency = "rupees"'), "currency", "pattern"),
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
