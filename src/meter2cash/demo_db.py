"""The demo's own database: where it lives, how it is created and marked, and what it refuses.

The demo fills a database with a simulated utility and, with ``--reset``, empties it first. It
must never do that to a database it did not create, so it never reads ``M2C_DATABASE_URL``: it
uses ``<var_dir>/demo/meter2cash-demo.db`` unless given another URL explicitly. A database the
demo creates (or finds without a single table) is migrated and marked with an audit row
``demo.database_created``; only a marked database is ever reset. Any other database is refused
(``demo.not_a_demo_database``) before anything is written to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, MetaData, Table, create_engine, func, insert, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.core.timeutil import utcnow
from meter2cash.db import make_engine, normalise_url, reset_database, upgrade

#: The demo's SQLite file, under the var directory.
DEMO_SQLITE = Path("demo") / "meter2cash-demo.db"
#: The database the demo creates on a PostgreSQL server given without a database name.
DEMO_PG_DATABASE = "meter2cash_demo"
#: The audit action of the row that marks a database as the demo's own.
MARKER_ACTION = "demo.database_created"


def default_demo_url(var_dir: Path) -> str:
    """``sqlite:///<var_dir>/demo/meter2cash-demo.db``."""
    return f"sqlite:///{var_dir / DEMO_SQLITE}"


def demo_database_url(url: str) -> str:
    """The URL the demo uses for ``url``: a PostgreSQL server URL without a database name
    (``postgresql://postgres@127.0.0.1:5432``) names the demo's own ``meter2cash_demo``."""
    try:
        parsed = make_url(normalise_url(url))
    except SQLAlchemyError as exc:
        raise InvalidInput(f"--database {url!r} is not a database URL", code="demo.bad_database_url") from exc
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        parsed = parsed.set(database=DEMO_PG_DATABASE)
    return parsed.render_as_string(hide_password=False)


def shown(url: str | URL) -> str:
    """``url`` for messages, without its password."""
    parsed = url if isinstance(url, URL) else make_url(normalise_url(url))
    return parsed.render_as_string(hide_password=True)


@dataclass(frozen=True, slots=True)
class DemoDatabase:
    """What the demo found at its URL and did: ``created``, ``reset`` or ``reused``."""

    url: str
    action: str


def prepare_demo_database(url: str, *, reset: bool) -> DemoDatabase:
    """Make ``url`` ready for the demo, or refuse it without writing anything.

    - no database, or one without a single table: created (PostgreSQL: ``CREATE DATABASE``),
      migrated and marked;
    - the demo's own (marked) database: migrated; with ``reset``, emptied and marked again;
      without it, refused if it holds accounts (``demo.database_not_empty``);
    - any other database: refused (``demo.not_a_demo_database``), ``reset`` or not.
    """
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInput(
                "the demo needs a database file or server, not an in-memory SQLite database",
                code="demo.bad_database_url",
            )
        exists = Path(parsed.database).exists()
    elif parsed.get_backend_name() == "postgresql":
        exists = _pg_database_exists(parsed)
    else:
        raise InvalidInput(
            f"the demo runs on SQLite or PostgreSQL, not {parsed.get_backend_name()}",
            code="demo.bad_database_url",
        )
    if not exists:
        if parsed.get_backend_name() == "postgresql":
            _pg_create_database(parsed)
        return _create(url, "created")
    tables, marked, accounts = _look(url)
    if not tables:
        return _create(url, "created")
    if not marked:
        raise Conflict(
            f"the database {shown(url)} was not created by the demo (it holds {len(tables)} tables); "
            "the demo never writes to or resets another database. Leave out --database to use "
            "the demo's own, or name a new one",
            code="demo.not_a_demo_database",
            database=shown(url),
        )
    if reset:
        reset_database(url)
        _mark(url)
        return DemoDatabase(url, "reset")
    if accounts:
        raise Conflict(
            f"the demo database {shown(url)} holds {accounts} accounts of an earlier run; "
            "run `m2c demo --reset` to replace them with a new demo utility",
            code="demo.database_not_empty",
            database=shown(url),
        )
    upgrade(url)
    return DemoDatabase(url, "reused")


def _create(url: str, action: str) -> DemoDatabase:
    upgrade(url)
    _mark(url)
    return DemoDatabase(url, action)


def _look(url: str) -> tuple[list[str], bool, int]:
    """The database's tables, whether it carries the demo's mark, and its number of accounts."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            if "audit_log" not in tables:
                return tables, False, 0
            audit = Table("audit_log", MetaData(), autoload_with=conn)
            marked = bool(
                conn.scalar(select(func.count()).select_from(audit).where(audit.c.action == MARKER_ACTION))
            )
            accounts = 0
            if "account" in tables:
                account = Table("account", MetaData(), autoload_with=conn)
                accounts = int(conn.scalar(select(func.count()).select_from(account)) or 0)
            return tables, marked, accounts
    finally:
        engine.dispose()


def _mark(url: str) -> None:
    from meter2cash.audit.models import AuditEntry

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(AuditEntry).values(
                    at=utcnow(),
                    actor="m2c demo",
                    action=MARKER_ACTION,
                    entity="database",
                    entity_id=(make_url(normalise_url(url)).database or "")[-64:],
                    before=None,
                    after={"purpose": "a simulated utility; `m2c demo --reset` may empty it"},
                )
            )
    finally:
        engine.dispose()


def _pg_admin(parsed: URL) -> Engine:
    """An autocommit connection to the server's maintenance database."""
    return create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")


def _pg_database_exists(parsed: URL) -> bool:
    admin = _pg_admin(parsed)
    try:
        with admin.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
    except SQLAlchemyError as exc:
        raise Conflict(
            f"cannot reach the PostgreSQL server of {shown(parsed)}: {exc.__class__.__name__}",
            code="demo.database_unreachable",
        ) from exc
    finally:
        admin.dispose()
    return found is not None


def _pg_create_database(parsed: URL) -> None:
    admin = _pg_admin(parsed)
    try:
        name = admin.dialect.identifier_preparer.quote(str(parsed.database))
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except SQLAlchemyError as exc:
        raise Conflict(
            f"cannot create the demo database {shown(parsed)}: {exc.__class__.__name__}; "
            "create it (createdb) or give --database one that exists and is empty",
            code="demo.cannot_create_database",
        ) from exc
    finally:
        admin.dispose()
