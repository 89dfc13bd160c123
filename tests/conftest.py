"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, cleaned after every test.

PostgreSQL runs at 127.0.0.1:5432 (override with ``M2C_TEST_PG_URL``). Each pytest worker creates
its own database and drops it at the end. Without a reachable server the PostgreSQL tests are
skipped, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from meter2cash.bootstrap import Platform, bootstrap
from meter2cash.cli.common import console
from meter2cash.config import Settings, get_settings
from meter2cash.db import upgrade
from meter2cash.integration.nats_bus import NatsConfig, delete_stream
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.models import metadata

PG_ADMIN_URL = os.environ.get("M2C_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file from ../shared/data; fails with a clear message when it is not there."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"test data {path} is missing: ../shared/data must sit beside the checkout")
    return path


def make_meter(session, serial: str, channels: dict[str, str] | None = None) -> dict[str, int]:
    """A meter with channels ``{reading_type_code: multiplier}``; returns channel ids by code."""
    rts = ensure_catalogue(session)
    meter = Meter(serial=serial, status="installed")
    session.add(meter)
    session.flush()
    ids = {}
    for code, mult in (channels or {"kwh_import_15m": "1"}).items():
        ch = Channel(meter_id=meter.id, reading_type_id=rts[code].id, multiplier=Decimal(mult))
        session.add(ch)
        session.flush()
        ids[code] = ch.id
    return ids


def attach_customer(session, meter_id: int, serial: str, customer_class: str, **agreement) -> None:
    """A customer of ``customer_class`` whose service point has the meter installed since
    2026-01-01, with an agreement on tariff ``T`` (names derived from ``serial``; ``agreement``:
    other values of the agreement's columns, e.g. ``tariff_code``, ``payment_mode``)."""
    from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
    from meter2cash.mdm.models import Installation

    person, premise = Person(name=f"P {serial}"), Premise(code=f"PR-{serial}")
    session.add_all([person, premise])
    session.flush()
    acc = Account(number=f"A-{serial}", person_id=person.id, customer_class=customer_class)
    sp = ServicePoint(code=f"SP-{serial}", premise_id=premise.id)
    session.add_all([acc, sp])
    session.flush()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    session.add_all(
        [
            Installation(meter_id=meter_id, service_point_id=sp.id, installed_at=since),
            ServiceAgreement(
                **{"number": f"SA-{serial}", "account_id": acc.id, "service_point_id": sp.id,
                   "tariff_code": "T", "start_date": since.date(), **agreement}
            ),
        ]
    )  # fmt: skip
    session.flush()


def store_example_tariffs(session) -> list[str]:
    """Every tariff of ``examples/tariffs`` stored (a master-data bundle must name loaded
    tariffs); their codes. Flushes, does not commit."""
    from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff

    codes = []
    for path in sorted((Path(__file__).resolve().parents[1] / "examples" / "tariffs").glob("*.toml")):
        definition = load_tariff_file(path)
        store_tariff(session, definition, path.read_text(encoding="utf-8"))
        codes.append(definition.code)
    return codes


def _pg_admin() -> Engine | None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        engine.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable at {PG_ADMIN_URL}: {exc}")
        return None
    return engine


@contextmanager
def _new_pg_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; drop it (forcibly) afterwards."""
    admin = _pg_admin()
    if admin is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    name = f"m2c_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test worker."""
    with _new_pg_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A new, empty (unmigrated) PostgreSQL database for one test, dropped afterwards."""
    with _new_pg_database() as url:
        yield url


NATS_URL = os.environ.get("M2C_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_reachable(url: str) -> bool:
    host, port = url.rsplit("//", 1)[-1].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def nats_stream() -> Iterator[NatsConfig]:
    """A JetStream stream and subject prefix of this test's own, deleted afterwards.

    NATS runs at 127.0.0.1:4222 (override with ``M2C_TEST_NATS_URL``); mandatory under CI=true.
    """
    if not _nats_reachable(NATS_URL):
        if IN_CI:
            pytest.fail(f"NATS is required under CI=true but unreachable at {NATS_URL}")
        pytest.skip(f"NATS not reachable at {NATS_URL}")
    tag = uuid.uuid4().hex[:10]
    cfg = NatsConfig(url=NATS_URL, stream=f"M2C_TEST_{tag}", prefix=f"m2ctest{tag}")
    try:
        yield cfg
    finally:
        delete_stream(cfg)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'm2c.db'}"
    upgrade(url)
    return url


def _clean(engine: Engine) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database; the test runs once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, var_dir=tmp_path / "var", timezone="Asia/Kolkata", currency="INR")


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    """A platform on an empty migrated database (emptied again after the test)."""
    p = bootstrap(settings)
    _clean(p.engine)
    try:
        yield p
    finally:
        _clean(p.engine)
        p.dispose()


@pytest.fixture
def session(platform: Platform) -> Iterator[Session]:
    """A session on the test database; the test commits what it wants to keep."""
    with platform.sessions() as s:
        yield s


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
