"""How each kind of command is sent: attempts, backoff, answer wait and deadline, as versioned
configuration (``policy.toml`` ships the default; ``M2C_COMMAND_POLICY`` names another file)."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from meter2cash.core.errors import InvalidInput, error_path
from meter2cash.mdm.commands.params import KINDS
from meter2cash.mdm.commands.states import RetryPolicy

DEFAULT_FILE = Path(__file__).with_name("policy.toml")


class KindPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    attempts: int = Field(default=3, ge=1, le=20)
    ack_wait_s: int = Field(default=120, gt=0)
    first_wait_s: int = Field(default=60, gt=0)
    factor: float = Field(default=2.0, ge=1, le=10)
    cap_s: int = Field(default=1800, gt=0)
    deadline_h: float = Field(default=6, gt=0, le=24 * 30)

    def retry(self, deadline: datetime) -> RetryPolicy:
        """The backoff schedule of a command due by ``deadline``."""
        return RetryPolicy(
            attempts=self.attempts,
            first_wait=timedelta(seconds=self.first_wait_s),
            factor=self.factor,
            cap=timedelta(seconds=max(self.cap_s, self.first_wait_s)),
            deadline=deadline,
        )

    def deadline(self, requested_at: datetime) -> datetime:
        return requested_at + timedelta(hours=self.deadline_h)


class CommandPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1, max_length=40)
    #: Commands at the head-end (sent or acknowledged) at most at once; more wait their turn, so
    #: that neither the head-end nor the broker between is handed more than it can queue.
    max_in_flight: int = Field(default=300, ge=1, le=1_000_000)
    default: KindPolicy = KindPolicy()
    kinds: dict[str, dict[str, float | int]] = Field(default_factory=dict)
    _by_kind: dict[str, KindPolicy] = PrivateAttr(default_factory=dict)

    def for_kind(self, kind: str) -> KindPolicy:
        """The policy of ``kind``: its own settings over the default (built once per kind)."""
        if kind not in self._by_kind:
            self._by_kind[kind] = KindPolicy(**{**self.default.model_dump(), **self.kinds.get(kind, {})})
        return self._by_kind[kind]


def parse_policy(text: str, source: str = "policy") -> CommandPolicy:
    """A command policy from TOML text; ``command.bad_policy`` names the wrong field."""
    try:
        policy = CommandPolicy.model_validate(tomllib.loads(text))
        unknown = sorted(set(policy.kinds) - set(KINDS))
        if unknown:
            raise InvalidInput(f"{source}: unknown command kinds {unknown}", code="command.bad_policy")
        for kind in policy.kinds:
            policy.for_kind(kind)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source}: {exc}", code="command.bad_policy") from None
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise InvalidInput(
            f"{source}: {error_path(e['loc']) or 'policy'}: {e['msg']}", code="command.bad_policy"
        ) from None
    return policy


@lru_cache(maxsize=8)
def load_policy(path: str | None = None) -> CommandPolicy:
    """The command policy in ``path`` (default: the shipped ``policy.toml``)."""
    file = Path(path) if path else DEFAULT_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read command policy {file}: {exc}", code="command.bad_policy") from None
    return parse_policy(text, str(file))
