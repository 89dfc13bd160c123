"""m2c vee run with rule sets by name, and m2c vee exceptions list/show/assign/comment/resolve."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from typer.testing import CliRunner

from integration.test_vee_exceptions import _customer, _spiky_day
from meter2cash.cli import app
from meter2cash.config import get_settings
from meter2cash.core.quality import Quality
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.models import VeeException

DAY = date(2026, 3, 10)


def test_exceptions_from_the_command_line(session, db_url, monkeypatch):
    cid = _customer(session, "C-5", "commercial")
    _spiky_day(session, cid)
    session.commit()
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(
            app, ["vee", "run", "--meters", "C-5", "--from", "2026-03-10", "--to", "2026-03-10"]
        )
        assert out.exit_code == 0, out.output
        assert "1 exceptions opened" in out.output
        xid = session.scalars(select(VeeException.id)).one()
        listed = runner.invoke(app, ["vee", "exceptions", "list"])
        assert listed.exit_code == 0 and "interval_spike" in listed.output and "2026-03-10" in listed.output
        assert runner.invoke(app, ["vee", "exceptions", "assign", str(xid), "--to", "meena"]).exit_code == 0
        assert runner.invoke(app, ["vee", "exceptions", "comment", str(xid), "looks real"]).exit_code == 0
        shown = runner.invoke(app, ["vee", "exceptions", "show", str(xid)])
        assert shown.exit_code == 0 and '"assignee": "meena"' in shown.output and "looks real" in shown.output
        no_reason = runner.invoke(
            app, ["vee", "exceptions", "resolve", str(xid), "--action", "edit", "--value", "50=2"]
        )
        assert no_reason.exit_code == 2 and "vee.edit_reason_missing" in no_reason.output
        bad = runner.invoke(
            app, ["vee", "exceptions", "resolve", str(xid), "--action", "edit", "--value", "x"]
        )
        assert bad.exit_code == 2
        done = runner.invoke(
            app,
            [
                "vee",
                "exceptions",
                "resolve",
                str(xid),
                "--action",
                "edit",
                "--value",
                "50=2.5",
                "--reason",
                "photo",
            ],
        )
        assert done.exit_code == 0 and "resolved (edit)" in done.output
        session.expire_all()
        day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
        assert day.values[50] == 2.5 and day.flags[50] == Quality.EDITED
        empty = runner.invoke(app, ["vee", "exceptions", "list"])
        assert "0 of 0" in empty.output
        unknown = runner.invoke(app, ["vee", "run", "--rule-set", "nope"])
        assert unknown.exit_code == 2 and "vee.rule_set_not_found" in unknown.output
    finally:
        get_settings.cache_clear()


def test_unknown_meters_are_named_alike_by_the_command_line_and_the_api(
    session, platform, db_url, monkeypatch
):
    import warnings

    from meter2cash.api.app import create_app
    from meter2cash.mdm.models import VeeRun

    with warnings.catch_warnings():  # the test client warns about its httpx transport on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    _customer(session, "C-6", "commercial")
    session.commit()
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(
            app, ["vee", "run", "--meter", "X-2", "--meter", "C-6", "--meter", "X-1", "--from", "2026-03-10"]
        )
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 2
    assert "vee.unknown_meter: no meter with serial X-1, X-2" in " ".join(out.output.split())
    with TestClient(create_app(platform)) as client:
        body = {"from": "2026-03-10", "to": "2026-03-10", "meters": ["X-2", "C-6", "X-1"]}
        r = client.post("/api/v1/vee/runs", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "vee.unknown_meter",
        "message": "no meter with serial X-1, X-2",
        "data": {"meters": ["X-1", "X-2"]},
    }
    session.expire_all()
    assert session.scalars(select(VeeRun)).all() == []
