"""Fixtures for the end-to-end tests through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from meter2cash.bootstrap import bootstrap
from meter2cash.cli.common import console
from meter2cash.config import Settings, get_settings
from meter2cash.db import upgrade
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue


@pytest.fixture
def one_meter_db(tmp_path, monkeypatch) -> Iterator[str]:
    """A migrated SQLite file with meter M1 (channel kwh_import_15m), configured for the CLI."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    p = bootstrap(Settings(database_url=url))
    with p.sessions() as s:
        rts = ensure_catalogue(s)
        meter = Meter(serial="M1", status="installed")
        s.add(meter)
        s.flush()
        s.add(Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id, multiplier=Decimal(1)))
        s.commit()
    p.dispose()
    monkeypatch.setenv("M2C_DATABASE_URL", url)
    monkeypatch.setattr(console, "width", 200)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
