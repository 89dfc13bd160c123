"""The one place that wires settings, the database and services together."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.config import Settings, get_settings
from meter2cash.core.timeutil import Clock, utcnow
from meter2cash.db import make_engine, require_migrated, session_factory
from meter2cash.events.outbox import Dispatcher
from meter2cash.mdm.usage.port import UsageFactory, UsageSource
from meter2cash.mdm.usage.sources import usage_factory
from meter2cash.notify.adapters import EmailAdapter, SmsAdapter, adapters_from_settings
from meter2cash.payment_gateway.adapter import GatewaySettings, PaymentGateway, gateway_from_settings


@dataclass
class Platform:
    """What an entrypoint (CLI command, API app, worker, test) needs to run services: the
    settings, the database, and the collaborators services receive (payment gateway, notification
    adapters, usage source, clock), built once here."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    #: The payment gateway's settings and client, built once from ``settings``.
    gateway_settings: GatewaySettings
    gateway: PaymentGateway
    #: The notification adapters (``M2C_NOTIFY_*``): SMS and e-mail.
    sms: SmsAdapter
    email: EmailAdapter
    #: Builds the usage source billing reads from, given the session it reads through
    #: (``M2C_USAGE_SOURCE``: this platform's MDM, or an external MDM's determinants).
    usage: UsageFactory
    #: What services ask for the time (the CLI, the API and workers: the system clock in UTC).
    clock: Clock = utcnow

    def dispose(self) -> None:
        self.engine.dispose()

    def usage_source(self, session: Session) -> UsageSource:
        """The usage source of this platform, reading through ``session``."""
        return self.usage(session)

    def with_settings(self, **changes: Any) -> Platform:
        """The same database with ``changes`` to the settings (validated again), and the
        adapters built from them; the engine stays this platform's to dispose of."""
        settings = Settings.model_validate({**self.settings.model_dump(), **changes})
        return dataclasses.replace(self, settings=settings, **_adapters(settings))


def _adapters(settings: Settings) -> dict[str, Any]:
    gateway_settings = GatewaySettings.from_settings(settings)
    sms, email = adapters_from_settings()
    return {
        "sms": sms,
        "email": email,
        "gateway_settings": gateway_settings,
        "gateway": gateway_from_settings(gateway_settings),
        "usage": usage_factory(settings.usage_source),
    }


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
    return Platform(settings=settings, engine=engine, sessions=session_factory(engine), **_adapters(settings))


def subscribers(settings: Settings) -> Dispatcher:
    """The in-process subscribers of the platform's events (the embedded bus).

    - ``vee.estimate_replaced`` → cancel and rebill the bills the replaced estimates were on;
    - ``payment.received`` → queue a receipt notification.
    """
    from meter2cash.cis.billing import rebill
    from meter2cash.cis.payments import receipt_notices

    dispatcher = Dispatcher()
    rebill.subscribe(
        dispatcher,
        tz=settings.timezone,
        currency=settings.currency,
        usage=usage_factory(settings.usage_source),
    )
    receipt_notices.subscribe(dispatcher)
    return dispatcher
