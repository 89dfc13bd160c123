"""The IS 15959 → IEC 61968-9 event catalogue."""

import re

import pytest

from meter2cash.mdm.events.catalogue import (
    CATEGORIES,
    EVENTS,
    LOAD_VIOLATION,
    PRIORITIES,
    event_type,
    occurrence_of,
    pairs,
    restoration_of,
    unknown_ids,
)

#: The IS 15959 IDs that must be catalogued: voltage 1–12, current 51–68, power 101/102, magnet
#: 201/202, cover open 251, relay 301/302.
REQUIRED = [*range(1, 13), *range(51, 69), 101, 102, 201, 202, 251, 301, 302]


@pytest.mark.parametrize(
    ("is_id", "cim", "category"),
    [(101, "3.26.0.85", "power"), (102, "3.26.0.216", "power"), (251, "3.12.29.212", "tamper")],
)
def test_the_issue_examples_map_as_stated(is_id: int, cim: str, category: str) -> None:
    event = event_type(is_id)
    assert event is not None
    assert (event.cim_type, event.category) == (cim, category)


def test_required_ids_are_catalogued() -> None:
    assert [i for i in REQUIRED if event_type(i) is None] == []


def test_codes_are_four_part_numeric_and_attributes_known() -> None:
    for event in EVENTS:
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", event.cim_type), event
        assert event.cim_type.startswith("3."), event  # electricity meter
        assert event.category in CATEGORIES
        assert event.priority in PRIORITIES
        assert event.code.startswith("event.")
    assert len({e.code for e in EVENTS}) == len(EVENTS)


def test_pairing_is_one_to_one() -> None:
    found = pairs()
    occurrences = [o.is15959_id for o, _ in found]
    restorations = [r.is15959_id for _, r in found]
    assert len(set(occurrences)) == len(occurrences)
    assert len(set(restorations)) == len(restorations)
    assert not set(occurrences) & set(restorations)
    # the IS 15959 pairs: odd occurrence, the next even ID restores it
    expected = [(i, i + 1) for i in [1, 3, 5, 7, 9, 11, *range(51, 69, 2), 101, 201]] + [(301, 302)]
    assert [(o.is15959_id, r.is15959_id) for o, r in found] == expected


def test_restoration_and_occurrence_lookups() -> None:
    restored = restoration_of(101)
    assert restored is not None and restored.is15959_id == 102
    occurred = occurrence_of(102)
    assert occurred is not None and occurred.is15959_id == 101
    assert restoration_of(102) is None  # a restoration restores nothing further
    assert restoration_of(251) is None  # cover open is non-rollover
    assert occurrence_of(251) is None
    assert restoration_of(9999) is None


def test_power_failure_is_the_last_gasp() -> None:
    assert [e.is15959_id for e in EVENTS if e.last_gasp] == [101]


def test_unknown_ids_are_reported_not_guessed() -> None:
    assert event_type(13) is None
    assert event_type(0) is None
    assert event_type(9999) is None
    assert unknown_ids([101, 13, 9999, 13, 251]) == [13, 9999]


def test_tamper_is_high_priority() -> None:
    assert {e.priority for e in EVENTS if e.category == "tamper"} == {"high"}
    assert LOAD_VIOLATION.is15959_id is None and LOAD_VIOLATION.category == "load"


def test_docs_table_matches_the_catalogue() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "hes.md").read_text()
    section = doc.split("## Event catalogue", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith(("| IS 15959", "| ---"))
    ]
    documented = {(r[0], r[2], r[3], r[4], r[5]) for r in rows}
    for e in EVENTS:
        key = str(e.is15959_id) if e.is15959_id is not None else "— (MDM)"
        restored = str(e.restored_by) if e.restored_by else "—"
        assert (key, e.cim_type, e.category, e.priority, restored) in documented, e
    assert len(rows) == len(EVENTS)
