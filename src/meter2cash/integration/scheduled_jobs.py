"""The periodic jobs the scheduler runs, by name: each takes the platform, the slot it runs for
and its parameters from the schedule file, does its work in one transaction and returns what it
did (kept in the run's history)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.config import Settings
from meter2cash.db import transaction
from meter2cash.mdm.usage.port import UsageFactory


class Platform(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def usage(self) -> UsageFactory: ...


Job = Callable[[Platform, datetime, dict[str, Any]], dict[str, Any]]


def _local_day(p: Platform, slot: datetime, back: int = 0) -> Any:
    return (slot.astimezone(ZoneInfo(p.settings.timezone)) - timedelta(days=back)).date()


def command_timeouts(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.prepaid.wallet import follow_supply
    from meter2cash.mdm.commands.service import expire_commands

    with transaction(p.sessions) as s:
        expired = expire_commands(s, p.clock())
        follow_supply(s, expired)
    return {"expired": len(expired)}


def order_triggers(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.integration.order_triggers import context_of, run_triggers

    with transaction(p.sessions) as s:
        return run_triggers(s, p.clock(), context=context_of(p)).to_dict()


def order_escalation(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.orders.escalation import escalate

    with transaction(p.sessions) as s:
        return escalate(s, p.clock())


def notifications(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.notify.adapters import adapters_from_settings
    from meter2cash.notify.sender import send_pending

    sms, email = adapters_from_settings()
    with transaction(p.sessions) as s:
        done = send_pending(s, sms, email, limit=int(params.get("limit", 500)))
    return done.to_dict()


def reacquire(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.integration.field_jobs import acquire_now

    with transaction(p.sessions) as s:
        done = acquire_now(s, p.clock(), days=int(params.get("days", 2)))
    return {"gaps": done.gaps, "commands": done.commands_new}


def vee(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.parties.customer_classes import service_point_classes
    from meter2cash.mdm.models import ChannelDay
    from meter2cash.mdm.vee.service import run_vee

    with transaction(p.sessions) as s:
        lo, hi = s.execute(
            select(func.min(ChannelDay.day), func.max(ChannelDay.day)).where(ChannelDay.vee_status == "raw")
        ).one()
        if lo is None:
            return {"channel_days": 0}
        start = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
        end = datetime(hi.year, hi.month, hi.day, tzinfo=UTC) + timedelta(days=1)
        result = run_vee(s, start=start, end=end, tz=p.settings.tz, customer_classes=service_point_classes)
    return {"run": result.run_id, "channel_days": result.channel_days, "exceptions": result.exceptions}


def prepaid_daily(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.prepaid.daily_charge import run_daily

    day = _local_day(p, slot, back=1)
    with transaction(p.sessions) as s:
        result = run_daily(s, day, tz=p.settings.timezone, currency=p.settings.currency, usage=p.usage)
    return {"day": day.isoformat(), "charged": result.charged, "errors": len(result.errors)}


def collections(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.collections.dunning import run_collections

    day = _local_day(p, slot)
    with transaction(p.sessions) as s:
        result = run_collections(s, day, currency=p.settings.currency, tz=p.settings.timezone, at=p.clock())
    return {"day": day.isoformat(), "steps": dict(result.steps), "surcharges": result.surcharges}


def bill_run(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    from meter2cash.cis.billing.run import run_bills

    first = _local_day(p, slot).replace(day=1)
    period = (first - timedelta(days=1)).strftime("%Y-%m")
    with transaction(p.sessions) as s:
        result = run_bills(
            s, period, tz=p.settings.timezone, currency=p.settings.currency, usage=p.usage,
            cycle=str(params.get("cycle", "monthly")), due_days=int(params.get("due_days", 15)),
            clock=p.clock,
        )  # fmt: skip
    return {
        "period": period,
        "bills": len(result.bills),
        "skipped": result.skipped,
        "errors": len(result.errors),
    }


def statistics(p: Platform, slot: datetime, params: dict[str, Any]) -> dict[str, Any]:
    with transaction(p.sessions) as s:
        s.execute(text("ANALYZE"))
    return {"analyzed": True}


JOBS: dict[str, Job] = {
    "command_timeouts": command_timeouts,
    "order_triggers": order_triggers,
    "order_escalation": order_escalation,
    "notifications": notifications,
    "reacquire": reacquire,
    "vee": vee,
    "prepaid_daily": prepaid_daily,
    "collections": collections,
    "bill_run": bill_run,
    "statistics": statistics,
}

__all__ = ["JOBS", "Job", "Platform"]
