"""Stored learned VEE models: trained per customer class, used by runs without retraining,
retrained when too old."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from conftest import attach_customer
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.customer_classes import service_point_classes
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee import learned_store
from meter2cash.mdm.vee.learned import N_FEATURES, LearnedModel
from meter2cash.mdm.vee.models import VeeModel
from meter2cash.mdm.vee.service import run_vee, vee_report

FIRST = date(2026, 3, 1)
HISTORY = 24  # days of validated history
SPD = 96


def _home(session, k: int, customer_class: str = "residential") -> int:
    rts = ensure_catalogue(session)
    serial = f"H-{k}"
    meter = Meter(serial=serial)
    session.add(meter)
    session.flush()
    ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
    session.add(ch)
    session.flush()
    attach_customer(session, meter.id, serial, customer_class)
    return ch.id


def _load(k: int, day: date) -> np.ndarray:
    rng = np.random.default_rng(k * 1000 + day.toordinal())
    slot = np.arange(SPD)
    shape = 0.3 + 0.25 * np.exp(-0.5 * ((slot - 30) / 6) ** 2) + 0.5 * np.exp(-0.5 * ((slot - 80) / 8) ** 2)
    return np.round((0.5 + 0.1 * k) * shape * rng.lognormal(0, 0.2, SPD), 3)


def _fleet(session, n: int = 12) -> list[int]:
    ids = [_home(session, k) for k in range(n)]
    store = MeasurementStore(session)
    data = {
        (cid, FIRST + timedelta(days=d)): (np.arange(SPD), _load(k, FIRST + timedelta(days=d)))
        for k, cid in enumerate(ids)
        for d in range(HISTORY)
    }
    store.merge(data, dict.fromkeys(ids, 900))
    session.commit()
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC)
    run_vee(session, start=start, end=start + timedelta(days=HISTORY), customer_classes=service_point_classes)
    session.commit()
    return ids


def _day_with_gap(session, ids: list[int], day: date) -> dict[str, Any]:
    """A new day for every channel, with an 8-hour gap on the first two."""
    data = {}
    for k, cid in enumerate(ids):
        v = _load(k, day)
        keep = np.ones(SPD, dtype=bool)
        if k < 2:
            keep[40:72] = False
        data[(cid, day)] = (np.flatnonzero(keep), v[keep])
    MeasurementStore(session).merge(data, dict.fromkeys(ids, 900))
    session.commit()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"start": start, "end": start + timedelta(days=1), "customer_classes": service_point_classes}


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = learned_store.train

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(learned_store, "train", counting)
    return calls


def test_model_round_trips_through_npz():
    m = LearnedModel(np.linspace(-1, 1, N_FEATURES), 1234)
    back = LearnedModel.from_npz(m.to_npz())
    assert back.samples == 1234 and np.array_equal(back.coef, m.coef)
    with pytest.raises(ValueError):
        LearnedModel.from_npz(LearnedModel(np.ones(3), 1).to_npz())


def test_trained_model_is_stored_and_used_by_the_next_run_without_training(session, train_calls):
    ids = _fleet(session)
    out = learned_store.train_models(
        session,
        start=FIRST,
        end=FIRST + timedelta(days=HISTORY - 1),
        classes=["residential"],
        customer_classes=service_point_classes,
    )
    session.commit()
    assert len(out) == 1 and out[0]["stored"] and out[0]["version"] == 1 and out[0]["channels"] == len(ids)
    m = out[0]["metrics"]
    assert m["holdout_intervals"] > 500 and m["mae_learned"] > 0 and m["mae_like_day"] > 0
    row = session.scalars(select(VeeModel)).one()
    assert row.scope == "class:residential" and row.active and row.interval_s == 900
    assert row.history_from == FIRST and row.samples > 0 and row.metrics["source"] == "training"
    assert len(train_calls) == 1
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "vee.model_trained")).one()

    res = run_vee(session, **_day_with_gap(session, ids, FIRST + timedelta(days=HISTORY)))
    session.commit()
    assert len(train_calls) == 1  # the run loaded the stored model
    assert res.learned_models == [
        {"scope": "class:residential", "interval_s": 900, "version": 1, "trained": False}
    ]
    assert res.estimated_by_method["learned"] > 0
    event = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.topic == "vee.completed", OutboxMessage.key == str(res.run_id)
        )
    ).one()
    assert event.payload["learned_models"][0]["version"] == 1
    assert learned_store.list_models(session)[0]["metrics"]["mae_learned"] == m["mae_learned"]
    assert vee_report(session, res.run_id)["learned_models"] == res.learned_models


def test_run_trains_and_stores_a_model_when_there_is_none_and_retrains_when_too_old(session, train_calls):
    ids = _fleet(session)
    assert not train_calls  # no gaps in the history: nothing to estimate, nothing trained
    day = FIRST + timedelta(days=HISTORY)
    res = run_vee(session, **_day_with_gap(session, ids, day))
    session.commit()
    assert (
        len(train_calls) == 1 and res.learned_models[0]["trained"] and res.learned_models[0]["version"] == 1
    )
    stored = session.scalars(select(VeeModel)).one()
    assert stored.metrics["source"] == "vee run" and "mae_learned" in stored.metrics

    res = run_vee(session, **_day_with_gap(session, ids, day + timedelta(days=1)))
    session.commit()
    assert len(train_calls) == 1 and res.learned_models[0] == {
        "scope": "class:residential",
        "interval_s": 900,
        "version": 1,
        "trained": False,
    }

    # older than estimation.learned_max_age_days (30): the next run trains version 2
    session.execute(update(VeeModel).values(trained_at=datetime.now(UTC) - timedelta(days=31)))
    session.commit()
    res = run_vee(session, **_day_with_gap(session, ids, day + timedelta(days=2)))
    session.commit()
    assert (
        len(train_calls) == 2 and res.learned_models[0]["version"] == 2 and res.learned_models[0]["trained"]
    )
    rows = session.scalars(select(VeeModel).order_by(VeeModel.version)).all()
    assert [(r.version, r.active) for r in rows] == [(1, False), (2, True)]


def test_training_without_enough_data_stores_nothing(session):
    _home(session, 1, "commercial")
    session.commit()
    out = learned_store.train_models(
        session, start=FIRST, end=FIRST + timedelta(days=6), customer_classes=service_point_classes
    )
    assert [(o["scope"], o["stored"], o["channels"]) for o in out] == [("class:commercial", False, 0)]
    assert session.scalars(select(VeeModel)).first() is None


def test_train_and_list_models_from_the_command_line_and_the_api(session, platform, db_url, monkeypatch):
    import warnings

    from typer.testing import CliRunner

    from meter2cash.api.app import create_app
    from meter2cash.cli import app
    from meter2cash.config import get_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    _fleet(session)
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        empty = runner.invoke(app, ["vee", "models"])
        assert empty.exit_code == 0 and "no learned models stored" in empty.output
        last = (FIRST + timedelta(days=HISTORY - 1)).isoformat()
        out = runner.invoke(app, ["vee", "train", "--to", last, "--days", "30", "--class", "residential"])
        assert out.exit_code == 0, out.output
        assert "Learned models" in out.output and "not stored" not in out.output
        listed = runner.invoke(app, ["vee", "models"])
        assert listed.exit_code == 0 and "Learned VEE models" in listed.output and "900 s" in listed.output
    finally:
        get_settings.cache_clear()
    with TestClient(create_app(platform)) as client:
        r = client.get("/api/v1/vee/models")
        assert r.status_code == 200, r.text
        (m,) = r.json()
        assert m["scope"] == "class:residential" and m["version"] == 1 and m["active"]
        assert m["metrics"]["mae_learned"] > 0 and m["history_to"] == last


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has one writer at a time
def test_a_run_uses_the_model_another_run_stored_meanwhile(session, platform, db_url, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    ids = _fleet(session)
    theirs = LearnedModel(np.full(N_FEATURES, 0.05), 999)
    store = learned_store.store_model

    def racing(*args, **kwargs):
        # another run stores version 1 of the scope and commits first: our insert of version 1 fails
        with platform.sessions() as other, other.begin():
            store(
                other,
                "class:residential",
                900,
                theirs,
                history_from=None,
                history_to=None,
                channels=1,
                metrics={},
            )
        raise IntegrityError("INSERT INTO vee_model", {}, Exception("duplicate version"))

    monkeypatch.setattr(learned_store, "store_model", racing)
    res = run_vee(session, **_day_with_gap(session, ids, FIRST + timedelta(days=HISTORY)))
    session.commit()
    assert res.learned_models == [
        {"scope": "class:residential", "interval_s": 900, "version": 1, "trained": False}
    ]
    assert res.estimated_by_method["learned"] > 0
    (row,) = session.scalars(select(VeeModel)).all()
    assert row.samples == 999
