"""SMS and e-mail adapters. E-mail goes over real SMTP; SMS through an HTTP provider or a file.

A provider plugs in by implementing :class:`SmsAdapter` or :class:`EmailAdapter`. Settings come
from ``M2C_NOTIFY_*`` (:class:`NotifySettings`).
"""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from meter2cash.core.timeutil import utcnow


class NotifySettings(BaseSettings):
    """``M2C_NOTIFY_SMTP_HOST``/``_SMTP_PORT``/``_SMTP_USER``/``_SMTP_PASSWORD``/``_SMTP_STARTTLS``,
    ``M2C_NOTIFY_MAIL_FROM``; ``M2C_NOTIFY_SMS_URL`` (an HTTP SMS gateway taking JSON
    ``{to, text}``; empty: SMS are appended to ``M2C_NOTIFY_SMS_FILE`` as JSON lines)."""

    model_config = SettingsConfigDict(env_prefix="M2C_NOTIFY_", env_file=".env", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "billing@meter2cash.local"
    sms_url: str = ""
    sms_file: Path = Path("./var/sms.jsonl")


class SmsAdapter(Protocol):
    def send(self, to: str, text: str) -> None: ...


class EmailAdapter(Protocol):
    def send(self, to: str, subject: str, text: str) -> None: ...


class MemorySms:
    """Keeps messages in a list (tests, dry runs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))


class FileSms:
    """Appends each SMS to a JSON-lines file (development; a provider's outbox folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, to: str, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"at": utcnow().isoformat(), "to": to, "text": text}) + "\n")


class HttpSms:
    """POSTs ``{"to", "text"}`` as JSON to an SMS provider's URL; a non-2xx answer is an error."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout

    def send(self, to: str, text: str) -> None:
        httpx.post(self.url, json={"to": to, "text": text}, timeout=self.timeout).raise_for_status()


class SmtpEmail:
    """Plain-text e-mail over SMTP (optionally STARTTLS and login)."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        user: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout

    def send(self, to: str, subject: str, text: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg.set_content(text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)


def adapters_from_settings(settings: NotifySettings | None = None) -> tuple[SmsAdapter, EmailAdapter]:
    s = settings or NotifySettings()
    sms: SmsAdapter = HttpSms(s.sms_url) if s.sms_url else FileSms(s.sms_file)
    email = SmtpEmail(
        s.smtp_host,
        s.smtp_port,
        s.mail_from,
        user=s.smtp_user,
        password=s.smtp_password,
        starttls=s.smtp_starttls,
    )
    return sms, email
