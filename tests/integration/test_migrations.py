"""The Alembic revisions build exactly the schema of the models, and upgrading keeps data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from meter2cash.db import alembic_config, make_engine, upgrade
from meter2cash.models import metadata


def _sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'm.db'}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_models(backend, tmp_path, request):
    url = _sqlite(tmp_path) if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == [], diff


def test_upgrade_from_the_first_release_keeps_reread_requests(tmp_path):
    url = _sqlite(tmp_path)
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO vee_reread_request (meter_id, channel_id, window_start, window_end, status,"
                " requested_at, requested_by) VALUES (1, 1, :t, :t, 'requested', :t, 'ops')"
            ),
            {"t": datetime(2026, 10, 1, tzinfo=UTC)},
        )
    engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as c:
        row = c.execute(text("SELECT status, outcome, sent_at FROM vee_reread_request")).one()
        version = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert tuple(row) == ("requested", "", None)
    assert version == ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_connection_commands_move_to_the_command_store(backend, tmp_path, request):
    url = _sqlite(tmp_path) if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    upgrade(url, "0006")
    t0, t1 = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 1, 0, 30, tzinfo=UTC)
    engine = make_engine(url)
    with engine.begin() as c:
        for sql in (
            "INSERT INTO person (id, name, email, phone, created_at) VALUES (1, 'A', '', '', :t)",
            "INSERT INTO account (id, number, person_id, customer_class, status, created_at)"
            " VALUES (1, 'AC1', 1, 'residential', 'active', :t)",
            "INSERT INTO premise (id, code, address, city, postcode) VALUES (1, 'PR1', 'x', 'y', '1')",
            "INSERT INTO service_point (id, code, premise_id, service_type, status)"
            " VALUES (1, 'SP1', 1, 'electricity', 'active')",
            "INSERT INTO service_agreement (id, number, account_id, service_point_id, tariff_code,"
            " payment_mode, sanctioned_load_kw, status, start_date) VALUES (1, 'SA1', 1, 1, 'T',"
            " 'prepaid', 5, 'active', '2026-09-01')",
            "INSERT INTO meter (id, serial, manufacturer, model, phase, status, created_at)"
            " VALUES (7, 'M7', '', '', 'single', 'installed', :t)",
            "INSERT INTO installation (meter_id, service_point_id, installed_at) VALUES (7, 1, :t)",
            "INSERT INTO connection_command (id, service_agreement_id, action, reason, status, requested_at,"
            " sent_at, finished_at, detail) VALUES (5, 1, 'reconnect', 'prepaid.recharged', 'executed', :t,"
            " :t, :u, 'ok')",
        ):
            c.execute(text(sql), {"t": t0, "u": t1})
    engine.dispose()
    upgrade(url, "0007")
    engine = make_engine(url)
    with engine.begin() as c:
        row = c.execute(
            text(
                "SELECT id, kind, meter_id, service_agreement_id, status, attempts, detail FROM meter_command"
            )
        ).one()
        steps = (
            c.execute(text("SELECT to_status FROM meter_command_step WHERE command_id = 5 ORDER BY id"))
            .scalars()
            .all()
        )
        new_id = c.execute(
            text(
                "INSERT INTO meter_command (kind, is_group, params, reason, requested_by, status, attempts,"
                " requested_at, detail, result) VALUES ('read', false, '{}', 'x', '', 'requested', 0, :t, '',"
                " '{}') RETURNING id"
            ),
            {"t": t0},
        ).scalar_one()
    engine.dispose()
    assert tuple(row) == (5, "connect", 7, 1, "executed", 1, "ok")
    assert steps == ["requested", "sent", "executed"]
    assert new_id == 6
