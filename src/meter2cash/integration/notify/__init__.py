"""Notifications out: SMS and e-mail adapters, and the message templates."""

from meter2cash.integration.notify.adapters import (
    EmailAdapter,
    FileSms,
    HttpSms,
    MemorySms,
    NotifySettings,
    SmsAdapter,
    SmtpEmail,
    adapters_from_settings,
)
from meter2cash.integration.notify.templates import render

__all__ = [
    "EmailAdapter",
    "FileSms",
    "HttpSms",
    "MemorySms",
    "NotifySettings",
    "SmsAdapter",
    "SmtpEmail",
    "adapters_from_settings",
    "render",
]
