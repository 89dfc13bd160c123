"""What each kind of command takes: checked once, the same for the CLI, the API and services."""

from __future__ import annotations

import pytest

from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.commands.params import check_params
from meter2cash.mdm.commands.policy import load_policy, parse_policy

IST_DAY = ("2026-10-01T00:00:00+05:30", "2026-10-02T00:00:00+05:30")


@pytest.mark.parametrize(
    ("kind", "params", "stored"),
    [
        ("disconnect", None, {}),
        ("read", {"profile": "relay"}, {"profile": "relay"}),
        (
            "read",
            {"profile": "1.0.99.1.0.255", "from": IST_DAY[0], "to": IST_DAY[1]},
            {"profile": "1.0.99.1.0.255", "from": IST_DAY[0], "to": IST_DAY[1]},
        ),
        (
            "reacquire",
            {"channel": "kwh_import_15m", "from": "2026-10-01T00:00:00Z", "to": "2026-10-01T06:00:00Z"},
            {"channel": "kwh_import_15m", "from": "2026-10-01T00:00:00Z", "to": "2026-10-01T06:00:00Z"},
        ),
        ("configure", {"load_limit_kw": "7.5"}, {"load_limit_kw": "7.5"}),
        ("configure", {"reset": "md"}, {"reset": "md"}),
        ("credit_update", {"amount": "250.50"}, {"amount": "250.50"}),
        ("payment_mode", {"mode": "prepaid"}, {"mode": "prepaid"}),
        ("firmware", {"image": "fw.bin", "version": "2.1", "sha256": "a" * 64},
         {"image": "fw.bin", "version": "2.1", "sha256": "a" * 64, "stage": 1}),
    ],
)  # fmt: skip
def test_good_params_are_stored_as_given(kind, params, stored):
    assert check_params(kind, params) == stored


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("disconnect", {"now": True}, "now"),
        ("read", {"profile": "1.0.1.8.0.255"}, "profile"),
        ("read", {"profile": "relay", "from": "2026-10-01T00:00:00Z"}, ""),
        ("read", {"profile": "events", "from": "2026-10-01T00:00:00", "to": "2026-10-02T00:00:00"}, "from"),
        ("reacquire", {"channel": "kwh_import_15m"}, ""),
        ("reacquire", {"channel": "x", "from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"}, ""),
        ("reacquire", {"channel": "x", "from": "2026-09-01T00:00:00Z", "to": "2026-10-03T00:00:00Z"}, ""),
        ("configure", {}, ""),
        ("configure", {"load_limit_kw": -1}, "load_limit_kw"),
        ("credit_update", {"amount": "-5"}, "amount"),
        ("payment_mode", {"mode": "both"}, "mode"),
        ("firmware", {"image": "fw.bin", "version": "2.1", "sha256": "xyz"}, "sha256"),
    ],
)
def test_bad_params_name_the_field(kind, params, field):
    with pytest.raises(InvalidInput) as info:
        check_params(kind, params)
    assert info.value.code == "command.bad_params"
    assert info.value.data["field"] == field


def test_an_unknown_kind_is_refused():
    with pytest.raises(InvalidInput) as info:
        check_params("self_destruct", {})
    assert info.value.code == "command.bad_kind"


def test_the_shipped_policy_and_a_kinds_own_settings_over_the_default():
    policy = load_policy()
    assert policy.for_kind("connect").deadline_h == 2
    assert policy.for_kind("time_sync").attempts == 3  # the default
    assert policy.for_kind("firmware").ack_wait_s == 900
    with pytest.raises(InvalidInput) as info:
        parse_policy('version = "1"\n[kinds.teleport]\nattempts = 2\n')
    assert info.value.code == "command.bad_policy"
    with pytest.raises(InvalidInput) as bad:
        parse_policy('version = "1"\n[default]\nattempts = 0\n')
    assert "default.attempts" in bad.value.message
