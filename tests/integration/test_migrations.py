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
