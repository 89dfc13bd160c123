"""The event routing kernels: pairing, de-duplication, outage storms, demand, outage masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.events.routing_config import load_rules, parse_rules
from meter2cash.mdm.events.routing_rules import (
    ALONE,
    CLOSES,
    DUPLICATE,
    LEVEL_DT,
    LEVEL_FEEDER,
    LEVEL_METER,
    OCCURRENCE,
    OPENS,
    ORPHAN,
    RESTORATION,
    SINGLE,
    coalesce_outages,
    demand_violations,
    event_roles,
    outage_slot_mask,
    pair_events,
)


def test_roles_follow_the_catalogue_pairs():
    key, role = event_roles([101, 102, 201, 202, 251, 301, 302, 999, -1])
    assert key.tolist() == [101, 101, 201, 201, -1, 301, 301, -1, -1]
    assert role.tolist() == [OCCURRENCE, RESTORATION, OCCURRENCE, RESTORATION, SINGLE, OCCURRENCE,
                             RESTORATION, SINGLE, SINGLE]  # fmt: skip


def test_pairing_by_hand():
    # meter 0: fail 10, fail again 20 (pushed then logged), restored 30, restored again 40
    # meter 1: a restoration with nothing open at 5; meter 0 magnet 15..25 interleaved
    meter = [0, 0, 0, 0, 1, 0, 0]
    at = [10, 20, 30, 40, 5, 15, 25]
    ids = [101, 101, 102, 102, 102, 201, 202]
    p = pair_events(meter, at, ids)
    assert p.disposition.tolist() == [OPENS, DUPLICATE, CLOSES, DUPLICATE, ORPHAN, OPENS, CLOSES]
    assert p.episode.tolist() == [0, 0, 0, 0, -1, 5, 5]
    assert p.closed_by.tolist() == [2, -1, -1, -1, -1, 6, -1]
    assert p.counts() == {"opens": 2, "duplicate": 2, "closes": 2, "orphan": 1, "single": 0}


def test_a_second_failure_after_a_restoration_opens_a_second_episode_whatever_the_input_order():
    # failed 100, restored 200, failed 300, restored 400 (given out of order)
    p = pair_events([3, 3, 3, 3], [400, 100, 300, 200], [102, 101, 101, 102])
    assert p.disposition.tolist() == [CLOSES, OPENS, OPENS, CLOSES]
    assert p.closed_by.tolist() == [-1, 3, 0, -1]
    assert p.episode.tolist() == [2, 1, 2, 1]


def test_an_episode_open_before_the_batch_is_closed_by_its_restoration():
    # row 2 stands for the episode opened at 50 in an earlier batch; the new failure at 60 repeats it
    p = pair_events([7, 7, 7], [60, 90, 50], [101, 102, 101], prior=[False, False, True])
    assert p.disposition.tolist() == [DUPLICATE, CLOSES, OPENS]
    assert p.closed_by[2] == 1 and p.episode.tolist() == [2, 2, 2]


def test_single_events_are_duplicates_inside_their_window_only():
    # cover open at 0, 600 (10 min later), 4200 (70 min after 600); window one hour
    p = pair_events([0, 0, 0, 1], [0, 600, 4200, 600], [251, 251, 251, 251], dedupe_s=3600)
    assert p.disposition.tolist() == [ALONE, DUPLICATE, ALONE, ALONE]
    assert p.episode.tolist() == [-1, -1, -1, -1]
    same_second = pair_events([0, 0], [5, 5], [999, 999])
    assert same_second.disposition.tolist() == [ALONE, DUPLICATE]


def test_an_empty_batch():
    p = pair_events([], [], [])
    assert p.disposition.size == 0 and p.counts()["opens"] == 0
    assert len(coalesce_outages([], [], [0], [0], window_s=60)) == 0


def test_a_storm_is_one_outage_per_transformer_and_window():
    # meters 0-3 under DT 10 (feeder 1), meter 4 under DT 11 (feeder 1), meter 5 without network
    meter_dt, meter_feeder = [10, 10, 10, 10, 11, -1], [1, 1, 1, 1, 1, -1]
    meter = [0, 1, 2, 4, 3, 5, 0]
    at = [0, 100, 250, 30, 900, 10, 260]  # meter 3 fails 650 s after the rest: a second outage
    o = coalesce_outages(meter, at, meter_dt, meter_feeder, window_s=300)
    assert list(zip(o.level.tolist(), o.group.tolist(), o.meters.tolist(), o.started_at.tolist(),
                    o.last_at.tolist(), strict=True)) == [
        (LEVEL_DT, 10, 3, 0, 260), (LEVEL_DT, 10, 1, 900, 900), (LEVEL_DT, 11, 1, 30, 30),
        (LEVEL_METER, 5, 1, 10, 10),
    ]  # fmt: skip
    assert o.outage.tolist() == [0, 0, 0, 2, 1, 3, 0]
    by_feeder = coalesce_outages(meter, at, meter_dt, meter_feeder, window_s=1000, level="feeder")
    assert list(zip(by_feeder.level.tolist(), by_feeder.meters.tolist(), strict=True)) == [
        (LEVEL_FEEDER, 5), (LEVEL_METER, 1),
    ]  # fmt: skip


def test_a_meter_without_transformer_falls_under_its_feeder():
    o = coalesce_outages([0, 1], [0, 5], [-1, -1], [4, 4], window_s=60)
    assert (o.level.tolist(), o.group.tolist(), o.meters.tolist()) == ([LEVEL_FEEDER], [4], [2])


def test_demand_is_energy_times_blocks_per_hour_against_the_sanctioned_load():
    energy = np.array(
        [[0.5, 2.0, np.nan, 1.0],  # 2 kWh in 15 min = 8 kW > 5
         [1.25, 1.25, 1.25, 1.25],  # 5 kW: not above
         [np.nan] * 4,  # nothing known
         [3.0, 0.0, 0.0, 0.0]]  # 12 kW but no sanctioned load known
    )  # fmt: skip
    check = demand_violations(energy, 900, [5, 5, 5, 0])
    assert check.violates.tolist() == [True, False, False, False]
    assert check.max_kw[:2].tolist() == [8.0, 5.0] and np.isnan(check.max_kw[2])
    assert check.slot.tolist() == [1, 0, -1, 0]
    assert check.slots_over.tolist() == [1, 0, 0, 0]
    tolerant = demand_violations(energy, 900, [5, 5, 5, 0], tolerance_pct=60)  # limit 8 kW
    assert tolerant.violates.tolist() == [False, False, False, False]
    half_hour = demand_violations([[3.0]], 1800, [5])  # 3 kWh in 30 min = 6 kW
    assert half_hour.max_kw.tolist() == [6.0] and half_hour.violates.tolist() == [True]


def test_outage_mask_marks_every_slot_the_window_touches():
    day = 1_000_000 * 86_400
    mask = outage_slot_mask([day + 1_000, day + 86_000], [day + 2_700, day + 90_000], day, 96, 900)
    assert np.flatnonzero(mask).tolist() == [1, 2, 95]
    assert not outage_slot_mask([day - 100], [day], day, 96, 900).any()


# --- properties ---------------------------------------------------------------------------------

PAIRED = [1, 2, 7, 8, 101, 102, 201, 202, 301, 302]
events = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 50), st.sampled_from([*PAIRED, 251, 999])), max_size=60
)


def reference_pairing(rows: list[tuple[int, int, int]]) -> list[str]:
    """Per event, in time order per meter and pair: the state machine written out by hand."""
    occurrence_of = {2: 1, 8: 7, 102: 101, 202: 201, 302: 301}
    out = [""] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0], occurrence_of.get(rows[i][2], rows[i][2]),
                                                    rows[i][1], rows[i][2] in occurrence_of))  # fmt: skip
    is_open: dict[tuple[int, int], bool] = {}
    last_single: dict[tuple[int, int], int] = {}
    for i in order:
        meter, t, eid = rows[i]
        if eid in (251, 999):
            out[i] = "duplicate" if last_single.get((meter, eid)) == t else "single"
            last_single[(meter, eid)] = t
            continue
        key = (meter, occurrence_of.get(eid, eid))
        if eid in occurrence_of:  # a restoration
            out[i] = "closes" if is_open.get(key) else ("duplicate" if key in is_open else "orphan")
            is_open[key] = False
        else:
            out[i] = "duplicate" if is_open.get(key) else "opens"
            is_open[key] = True
    return out


@settings(max_examples=200, deadline=None)
@given(events)
def test_pairing_matches_the_written_out_state_machine(rows):
    names = ["opens", "duplicate", "closes", "orphan", "single"]
    p = pair_events([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert [names[d] for d in p.disposition.tolist()] == reference_pairing(rows)


@settings(max_examples=200, deadline=None)
@given(events)
def test_every_occurrence_ends_in_exactly_one_episode(rows):
    meter = np.array([r[0] for r in rows], dtype=np.int64)
    ids = np.array([r[2] for r in rows], dtype=np.int64)
    p = pair_events(meter, [r[1] for r in rows], ids)
    key, _ = event_roles(ids)
    for i in np.flatnonzero(p.role == OCCURRENCE):
        ep = p.episode[i]
        assert ep >= 0 and p.disposition[ep] == OPENS  # one episode, opened by an occurrence
        assert meter[ep] == meter[i] and key[ep] == key[i]
    closers = p.closed_by[p.closed_by >= 0]
    assert len(set(closers.tolist())) == closers.size  # a restoration closes one episode at most
    assert np.all(p.disposition[closers] == CLOSES)
    assert np.count_nonzero(p.disposition == CLOSES) == closers.size


storm = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 5_000)), max_size=120, unique_by=lambda r: r[0])


@settings(max_examples=200, deadline=None)
@given(storm, st.integers(0, 900), st.sampled_from(["dt", "feeder"]))
def test_coalesced_outage_meter_counts_sum_to_the_meters_that_failed(rows, window, level):
    rng = np.random.default_rng(len(rows))
    meter_dt = rng.integers(-1, 4, size=41)
    meter_feeder = rng.integers(-1, 2, size=41)
    meter = [r[0] for r in rows]
    o = coalesce_outages(meter, [r[1] for r in rows], meter_dt, meter_feeder, window_s=window, level=level)
    assert int(o.meters.sum()) == len(rows)
    assert np.all(o.started_at <= o.last_at)
    if rows:  # the input's order does not matter
        back = coalesce_outages(meter[::-1], [r[1] for r in rows][::-1], meter_dt, meter_feeder,
                                window_s=window, level=level)  # fmt: skip
        assert back.meters.tolist() == o.meters.tolist()
        assert back.outage[::-1].tolist() == o.outage.tolist()


# --- the rules file -----------------------------------------------------------------------------


def test_the_packaged_rules_route_tampers_outages_and_the_rest():
    rules = load_rules()
    assert rules.outage.event_ids == [101] and rules.outage.level == "dt"
    assert rules.rule_for(251, "tamper").valid_after_minutes == 0
    assert rules.rule_for(201, "tamper").valid_after_minutes == 30
    assert rules.rule_for(9, "voltage").name == "voltage"
    assert rules.rule_for(999, "other") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rules": [{"name": "x", "targets": ["oms"]}]}, "rules[0]"),
        ({"rules": [{"name": "x", "ids": [7], "targets": ["wfm"]}]}, "rules[0]"),
        ({"rules": [{"name": "x", "ids": [7], "targets": ["sms"]}]}, "rules[0]"),
        ({"rules": [{"name": "x", "ids": [7], "targets": ["fax"]}]}, "rules[0].targets[0]"),
        ({"rules": [{"name": "x", "ids": [101]}]}, ""),
        ({"outage": {"event_ids": [251]}}, "outage"),
        ({"outage": {"window_minutes": 5.5}}, "outage.window_minutes"),
        ({"rules": [{"name": "x", "ids": [7], "work_order": "paint", "targets": ["wfm"]}]}, "rules[0]"),
    ],
)
def test_invalid_rules_are_refused_with_the_field(change, field):
    with pytest.raises(InvalidInput) as exc:
        parse_rules({"version": "1", **change})
    assert exc.value.code == "events.rules_invalid"
    assert field in [p["field"] for p in exc.value.data["problems"]]
