"""Settings from the environment (prefix ``M2C_``), read once per process.

Outside ``M2C_ENVIRONMENT=development`` the settings refuse to exist without API keys and with a
known default secret (as the FastAPI full-stack template's settings do): a production server
never starts open to anyone or verifying webhooks with a secret printed in the docs.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meter2cash.core.errors import M2CError

DEFAULT_DATABASE_URL = "sqlite:///./var/meter2cash.db"
#: The webhook signing secret of the sandbox gateway; known to everyone who read the docs.
SANDBOX_GATEWAY_SECRET = "sandbox-secret"
#: Secrets nobody should run with: defaults, placeholders from docs and templates.
PLACEHOLDER_SECRETS = frozenset(
    {
        SANDBOX_GATEWAY_SECRET,
        "changethis",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "example",
        "test",
        "testing",
        "dev",
        "development",
        "apikey",
        "api-key",
        "api_key",
        "your-api-key",
        "my-api-key",
        "key",
        "token",
        "xxx",
    }
)
#: Shortest API key or signing secret accepted outside development.
MIN_SECRET_LENGTH = 16

Environment = Literal["development", "staging", "production"]

KIB = 1024
MIB = 1024 * KIB


class ConfigError(M2CError):
    """Settings that cannot be used (a malformed value, or an unsafe one outside development)."""

    code = "config.invalid"
    http_status = 500


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``M2C_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="M2C_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    #: IANA time zone of the utility: TOU periods, billing months and day types are local.
    timezone: str = "Asia/Kolkata"
    currency: str = "INR"
    #: Directory for generated artefacts (bills, demo files).
    var_dir: Path = Path("./var")
    #: Comma-separated API keys accepted in ``X-API-Key``; empty leaves the API open (development only).
    api_keys: str = ""
    #: NATS JetStream server for the event bus (``m2c outbox relay``); empty: in-process only.
    nats_url: str = ""
    #: The MQTT broker of the head-end link (``m2c hes serve --transport mqtt``, the demo's head-end).
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    #: The head-end system this MDM exchanges messages and commands with (topics, subjects, stream).
    hes_name: str = "hes"
    #: Where due meter commands are POSTed (the head-end's REST callback); empty: the HES pulls them.
    hes_callback_url: str = ""
    #: How meter commands are sent (attempts, backoff, deadlines per kind); empty: the shipped
    #: ``mdm/commands/policy.toml``.
    command_policy: str = ""
    #: A directory of order workflow files that replace the shipped ones of the same type
    #: (``cis/orders/workflows/``); empty: the shipped ones only.
    workflows: str = ""
    #: The schedule of the periodic jobs; empty: the shipped ``integration/schedule.toml``.
    schedule: str = ""
    #: ``development`` allows an open API and default secrets (with a warning); nothing else does.
    environment: Environment = "development"
    sql_echo: bool = False
    #: Where billing reads usage: ``local`` (this platform's MDM) or ``external`` (determinants
    #: an external MDM delivered, docs/formats.md#determinants).
    usage_source: Literal["local", "external"] = "local"

    #: The payment gateway's API (the sandbox by default).
    gateway_url: str = "http://127.0.0.1:8765"
    #: Secret the gateway signs its webhooks with; empty: the webhook is switched off.
    gateway_secret: str = SANDBOX_GATEWAY_SECRET
    #: Accepted difference between a webhook's timestamp and our clock [s].
    gateway_tolerance_s: int = Field(300, ge=1, le=3600)

    #: Largest JSON body of a command (payments, load changes, VEE actions) [bytes].
    max_json_bytes: int = Field(64 * KIB, ge=1 * KIB, le=16 * MIB)
    #: Largest master-data bundle sent to ``POST /masterdata`` [bytes].
    max_bundle_bytes: int = Field(2 * MIB, ge=1 * KIB, le=256 * MIB)
    #: Largest reading file sent to ``POST /readings`` (read as a stream) [bytes].
    max_upload_bytes: int = Field(64 * MIB, ge=1 * KIB, le=4096 * MIB)
    #: Deepest nesting of arrays and objects accepted in a JSON body.
    max_json_depth: int = Field(64, ge=4, le=512)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"M2C_TIMEZONE={value!r} is not an IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_outside_development(self) -> Self:
        problems = self.security_problems()
        if problems and self.environment != "development":
            raise ValueError(f"M2C_ENVIRONMENT={self.environment} refuses to start: " + "; ".join(problems))
        return self

    def security_problems(self) -> list[str]:
        """What makes these settings unsafe for a server reachable by others (empty: nothing).

        In development these are warnings; anywhere else the settings are refused.
        """
        problems = []
        keys = self.api_key_set
        if not keys:
            problems.append("M2C_API_KEYS is empty, so the API is open to anyone who can reach it")
        weak = sorted(k for k in keys if _is_weak(k))
        if weak:
            problems.append(
                f"M2C_API_KEYS holds {len(weak)} placeholder or short key(s) "
                f"(use random keys of at least {MIN_SECRET_LENGTH} characters)"
            )
        if self.gateway_secret and _is_weak(self.gateway_secret):
            problems.append(
                "M2C_GATEWAY_SECRET is a default or placeholder secret, so anyone can sign a webhook "
                "(set the gateway's real signing secret, or an empty value to switch the webhook off)"
            )
        return problems

    def check_safe(self) -> None:
        """Raise :class:`ConfigError` when these settings are unsafe outside development (also for
        settings built with ``model_copy``, which skips validation)."""
        problems = self.security_problems()
        if problems and self.environment != "development":
            raise ConfigError(
                f"M2C_ENVIRONMENT={self.environment} refuses to start: " + "; ".join(problems),
                problems=problems,
            )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    def key_is_valid(self, key: str) -> bool:
        """Whether ``key`` is one of the API keys, compared in constant time with every key."""
        given = key.encode()
        found = False
        for k in self.api_key_set:
            found |= hmac.compare_digest(given, k.encode())
        return found


def _is_weak(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret.strip()) < MIN_SECRET_LENGTH


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; :class:`ConfigError` (one line, ``config.invalid``) when refused."""
    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"the M2C_* settings cannot be used: {reasons}") from None
