"""The one place that wires settings, the database and services together."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.config import Settings, get_settings
from meter2cash.db import make_engine, require_migrated, session_factory
from meter2cash.integration.outbox import Dispatcher


@dataclass
class Platform:
    """What an entrypoint (CLI command, API app, worker, test) needs to run services."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def dispose(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, check_migrated: bool = True) -> Platform:
    """Connect to the configured database; refuse an unmigrated one unless told not to check."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, echo=settings.sql_echo)
    if check_migrated:
        try:
            require_migrated(engine)
        except Exception:
            engine.dispose()
            raise
    return Platform(settings=settings, engine=engine, sessions=session_factory(engine))


def subscribers(settings: Settings) -> Dispatcher:
    """The in-process subscribers of the platform's events (the embedded bus).

    - ``vee.estimate_replaced`` → cancel and rebill the bills the replaced estimates were on;
    - ``payment.received`` → queue a receipt notification.
    """
    from meter2cash.cis import notifications, rebill

    dispatcher = Dispatcher()
    rebill.subscribe(dispatcher, tz=settings.timezone, currency=settings.currency)
    notifications.subscribe(dispatcher)
    return dispatcher
