"""Money: ``Decimal`` only, with per-currency minor units and explicit rounding.

Array kernels work in exact scaled integers (see :func:`to_minor_units`) and hand back
``Decimal`` at their edge; floats never carry an amount of money.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Literal

import numpy as np
import numpy.typing as npt

RoundingMode = Literal["half_up", "half_even"]

#: ISO 4217 minor-unit exponents for the currencies utilities bill in most.
MINOR_UNITS: dict[str, int] = {"INR": 2, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2, "ZAR": 2, "KES": 2, "JPY": 0}

ZERO = Decimal("0")
_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


def minor_exponent(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_exponent(currency))


def round_money(amount: Decimal, currency: str = "INR", mode: RoundingMode = "half_up") -> Decimal:
    """Round ``amount`` to the currency's minor unit."""
    return amount.quantize(quantum(currency), rounding=_MODES[mode])


def to_decimal(value: object) -> Decimal:
    """Parse a money or rate value given as text, int or Decimal (never float)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):
        raise TypeError(f"money must not be given as {type(value).__name__}: {value!r}; quote it")
    return Decimal(str(value))


def round_half_up_int(numer: npt.NDArray[np.int64], scale: int) -> npt.NDArray[np.int64]:
    """Divide integer ``numer`` by ``scale`` rounding half away from zero, exactly, element-wise."""
    q, r = np.divmod(np.abs(numer), scale)
    q = q + (2 * r >= scale)
    return np.where(numer < 0, -q, q).astype(np.int64)


def minor_to_decimal(minor: int, currency: str = "INR") -> Decimal:
    return Decimal(int(minor)).scaleb(-minor_exponent(currency))
