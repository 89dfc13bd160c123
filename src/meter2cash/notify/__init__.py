"""Notifications out: the queue services write to (:mod:`.models`), the sender, SMS and e-mail
adapters, and the message templates."""

from meter2cash.notify.adapters import (
    EmailAdapter,
    FileSms,
    HttpSms,
    MemorySms,
    NotifySettings,
    SmsAdapter,
    SmtpEmail,
    adapters_from_settings,
)
from meter2cash.notify.templates import render

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
