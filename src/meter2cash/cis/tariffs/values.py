"""Exact decimal field types for tariff files: a TOML float is refused, places are bounded."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator


def _decimal(places: int) -> Any:
    def parse(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValueError(f"expected a number as a quoted string, got {value!r}")
        if isinstance(value, float):
            raise ValueError(
                f'{value!r} is a float; quote money and rates so they stay exact, e.g. "{value}"'
            )
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, (int, str)):
            try:
                d = Decimal(str(value).strip())
            except InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal number") from None
        else:
            raise ValueError(f"expected a decimal number as a string, got {type(value).__name__}")
        if not d.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        if d != d.quantize(Decimal(1).scaleb(-places)):
            raise ValueError(f"{value!r} has more than {places} decimal places")
        return d

    return BeforeValidator(parse)


#: A money amount or unit rate [currency or currency/unit], at most 6 decimals.
RateValue = Annotated[Decimal, _decimal(6)]
#: An energy quantity [kWh], at most 3 decimals.
KwhValue = Annotated[Decimal, _decimal(3)]
#: A percentage [%], at most 4 decimals.
PercentValue = Annotated[Decimal, _decimal(4)]
