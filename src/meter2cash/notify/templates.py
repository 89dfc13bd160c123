"""Message templates (Jinja2) for alerts, receipts and notices.

Each template has an e-mail subject, and a body used for both SMS and e-mail. Context values are
strings prepared by the service that queued the notification (amounts already formatted).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined

TEMPLATES: dict[str, tuple[str, str]] = {
    "low_balance": (
        "Low prepaid balance",
        "Your prepaid electricity balance is {{ balance }}, at or below your {{ threshold }} alert. "
        "Recharge soon to avoid disconnection.",
    ),
    "receipt": (
        "Payment receipt {{ receipt }}",
        "Thank you. We received {{ amount }} {{ currency }} by {{ channel }} "
        "({{ purpose }}), receipt {{ receipt }}.",
    ),
    "dunning_reminder": (
        "Reminder: electricity bill overdue",
        "Your account has {{ debt }} overdue since {{ oldest_due }}. Please pay at the earliest.",
    ),
    "dunning_notice": (
        "Notice of non-payment",
        "NOTICE: {{ debt }} is overdue since {{ oldest_due }}. If it is not paid, supply may be "
        "disconnected after the notice period.",
    ),
    "dunning_disconnect": (
        "Disconnection for non-payment",
        "Supply is scheduled for disconnection for non-payment of {{ debt }} (overdue since "
        "{{ oldest_due }}). Pay now to avoid it.",
    ),
    "load_violation": (
        "Demand above your sanctioned load",
        "Your demand reached {{ demand }} at {{ at }}, above your sanctioned load of {{ sanctioned }} "
        "(service point {{ service_point }}). Reduce your load or apply for a load change.",
    ),
    "order.verified": (
        "Your {{ title }} {{ number }} is verified",
        "Your {{ title }} request {{ number }} has been verified and is being processed. "
        "Expected by {{ due }}.",
    ),
    "order.rejected": (
        "Your {{ title }} {{ number }} was not accepted",
        "Your {{ title }} request {{ number }} could not be accepted: {{ reason }}.",
    ),
    "order.connected": (
        "Connected: {{ number }}",
        "Your new connection {{ number }} is live. Your meter is {{ meter }}.",
    ),
    "order.completed": (
        "Done: {{ title }} {{ number }}",
        "Your {{ title }} request {{ number }} is complete.",
    ),
    "order.escalated": (
        "{{ count }} {{ title }} order(s) escalated to {{ to }}",
        "{{ count }} {{ title }} order(s) are past their deadline and were escalated to {{ to }} "
        "(level {{ level }}). m2c orders list --overdue shows them.",
    ),
    "order.closed": (
        "Closed: {{ title }} {{ number }}",
        "Your {{ title }} request {{ number }} is complete and your account is settled.",
    ),
}
_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def render(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """``(subject, body)`` of a template; an unknown template or a missing value raises."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown notification template {template!r}")
    subject, body = TEMPLATES[template]
    return _ENV.from_string(subject).render(context), _ENV.from_string(body).render(context)
