"""What each kind of command takes (``params``), checked the same way from the CLI, the API and
the services that issue commands. Pure: no database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from meter2cash.core.errors import InvalidInput, error_path

#: What a command asks of a meter.
KINDS = (
    "connect",
    "disconnect",
    "read",
    "reacquire",
    "time_sync",
    "configure",
    "credit_update",
    "payment_mode",
    "firmware",
)
#: IS 15959 profiles by the OBIS code of the profile object.
BLOCK_LOAD = "1.0.99.1.0.255"
DAILY = "1.0.99.2.0.255"
BILLING = "1.0.98.1.0.255"
INSTANTANEOUS = "1.0.94.91.0.255"
PROFILES: dict[str, str] = {
    BLOCK_LOAD: "block load",
    DAILY: "daily load",
    BILLING: "billing",
    INSTANTANEOUS: "instantaneous",
}
#: What a ``read`` may ask for: a profile, the event logs, or the relay state.
READ_TARGETS = (*PROFILES, "events", "relay")
#: The longest window one read or re-acquisition asks for.
MAX_WINDOW = timedelta(days=31)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Window(_Params):
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> _Window:
        if (self.from_ is None) != (self.to is None):
            raise ValueError("give both from and to, or neither")
        if self.from_ is not None and self.to is not None:
            if self.to <= self.from_:
                raise ValueError("to must be after from")
            if self.to - self.from_ > MAX_WINDOW:
                raise ValueError(f"a window of at most {MAX_WINDOW.days} days")
        return self


class NoParams(_Params):
    pass


class ReadParams(_Window):
    profile: Literal[READ_TARGETS]  # type: ignore[valid-type]
    #: A relay read-back: the command whose relay it confirms.
    for_command: int | None = Field(default=None, ge=1)


class ReacquireParams(_Window):
    channel: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _needs_window(self) -> ReacquireParams:
        if self.from_ is None:
            raise ValueError("a re-acquisition needs its window: from and to")
        return self


class ConfigureParams(_Params):
    load_limit_kw: Decimal | None = Field(default=None, gt=0, le=100_000)
    #: TOU parameters as the meter takes them: zone start times and tiers (``{"zones": [...]}``).
    tou: dict[str, Any] | None = None
    reset: Literal["md"] | None = None

    @model_validator(mode="after")
    def _one(self) -> ConfigureParams:
        given = [k for k in ("load_limit_kw", "tou", "reset") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of load_limit_kw, tou, reset")
        return self


class CreditParams(_Params):
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=4)


class PaymentModeParams(_Params):
    mode: Literal["prepaid", "postpaid"]


class FirmwareParams(_Params):
    image: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=40)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: The rollout stage this meter belongs to (1 = pilot).
    stage: int = Field(default=1, ge=1, le=20)


SCHEMAS: dict[str, type[_Params]] = {
    "connect": NoParams,
    "disconnect": NoParams,
    "time_sync": NoParams,
    "read": ReadParams,
    "reacquire": ReacquireParams,
    "configure": ConfigureParams,
    "credit_update": CreditParams,
    "payment_mode": PaymentModeParams,
    "firmware": FirmwareParams,
}


def check_params(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked for ``kind`` and returned as stored (JSON: times ISO 8601, amounts as
    text); ``command.bad_kind``, ``command.bad_params`` naming the field."""
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise InvalidInput(
            f"unknown command kind {kind!r}; one of {', '.join(KINDS)}", code="command.bad_kind"
        )
    try:
        checked = schema.model_validate(params or {})
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = error_path(e["loc"])
        raise InvalidInput(
            f"{kind} params: {where + ': ' if where else ''}{e['msg']}",
            code="command.bad_params",
            field=where,
        ) from None
    return checked.model_dump(mode="json", by_alias=True, exclude_none=True)
