"""Database engine, sessions, column types and the migration gate.

One schema on two databases: SQLite (embedded default) and PostgreSQL. Money, loads and billed
quantities are stored as scaled integers (:class:`ScaledDecimal`), so sums in SQL are exact on both
and no float ever carries money. Meter readings are floats: interval values are float64 arrays (one
binary row per channel and UTC day), register reads and the readings at a meter's installation and
removal are ``Float`` columns (:mod:`meter2cash.mdm.models`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from meter2cash.core.errors import DatabaseNotMigrated

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ScaledDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` stored as an integer count of ``10**-scale`` (exact on every database).

    Binding a value with more decimal places than ``scale`` is an error, never a silent rounding.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"refusing float {value!r} for an exact decimal column; use Decimal")
        scaled = Decimal(value).scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-self.scale)


#: Amounts of money (4 decimal places: enough for every ISO currency and for sub-unit rates).
Money = ScaledDecimal(4)
#: Energy/demand quantities (kWh, kW, kVAh: 3 decimal places, i.e. Wh resolution).
Quantity = ScaledDecimal(3)
#: Unit rates (6 decimal places).
Rate = ScaledDecimal(6)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetime stored in UTC; naive input is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every timestamp must carry a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _begin_before_savepoint(conn: Any, _name: str) -> None:
    """Open the SQLite transaction before a savepoint. The ``sqlite3`` module begins one only
    before the first INSERT, UPDATE or DELETE; a SAVEPOINT before any of them would open it
    itself, and releasing that savepoint would then commit everything so far, which a later
    rollback of the whole transaction could no longer undo."""
    dbapi_conn = conn.connection.driver_connection
    if not dbapi_conn.in_transaction:
        dbapi_conn.execute("BEGIN")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _begin_before_savepoint)
        return engine
    # psycopg prepares a statement on the server after five executions; PostgreSQL then plans it
    # generically, and for the store's IN lists of thousands of channels that generic plan scans
    # the whole table (measured: 18x slower reads). Plans made per execution stay index scans.
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args={"prepare_threshold": None})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


# --- migrations -------------------------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def reset_database(url: str) -> None:
    """Drop every meter2cash table (SQLite: remove the file) and migrate afresh. Destroys all data."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
    else:
        from alembic import command

        command.downgrade(alembic_config(url), "base")
    upgrade(url)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_migrated(engine: Engine) -> None:
    """Refuse to run on a database that is not at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no meter2cash schema" if current is None else f"is at revision {current}"
        raise DatabaseNotMigrated(
            f"the database {where} {state}; the code needs revision {head}. Run `m2c db upgrade` first.",
            current=current,
            head=head,
        )
