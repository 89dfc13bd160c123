"""Settings from the environment (prefix ``M2C_``), read once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/meter2cash.db"


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``M2C_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="M2C_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    #: IANA time zone of the utility: TOU periods, billing months and day types are local.
    timezone: str = "Asia/Kolkata"
    currency: str = "INR"
    #: Directory for generated artefacts (bills, demo files).
    var_dir: Path = Path("./var")
    #: Comma-separated API keys accepted in ``X-API-Key``; empty means the API is open (development).
    api_keys: str = ""
    #: NATS JetStream server for the event bus (``m2c outbox relay``); empty: in-process only.
    nats_url: str = ""
    environment: str = "development"
    sql_echo: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"M2C_TIMEZONE={value!r} is not an IANA time zone") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
