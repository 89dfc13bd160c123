"""Money: ``Decimal`` only, with per-currency minor units and explicit rounding.

Array kernels work in exact scaled integers (see :func:`to_minor_units`) and hand back
``Decimal`` at their edge; floats never carry an amount of money.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
from babel.numbers import get_currency_precision, is_currency

from meter2cash.core.errors import InvalidInput

RoundingMode = Literal["half_up", "half_even"]

ZERO = Decimal("0")
_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
#: Digits before the decimal point an amount may have: 999,999,999,999 (stored amounts are
#: integers of 10⁻⁴ in a signed 64-bit column, which holds about 9.2 × 10¹⁴).
MAX_INTEGER_DIGITS = 12
#: An amount as written by a person or a machine: optional sign, digits, optional fraction.
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


@lru_cache(maxsize=256)
def check_currency(currency: str) -> str:
    """The ISO 4217 code ``currency`` (upper case), or ``money.unknown_currency``."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if len(code) != 3 or not code.isalpha() or not is_currency(code):
        raise InvalidInput(
            f"{currency!r} is not an ISO 4217 currency code", code="money.unknown_currency", currency=currency
        )
    return code


@lru_cache(maxsize=256)
def minor_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit from ISO 4217 (CLDR, through Babel): 2 for
    INR, 0 for JPY and CLP, 3 for KWD; ``money.unknown_currency`` for a code that is none."""
    return int(get_currency_precision(check_currency(currency)))


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_exponent(currency))


def round_money(amount: Decimal, currency: str = "INR", mode: RoundingMode = "half_up") -> Decimal:
    """Round ``amount`` to the currency's minor unit."""
    return amount.quantize(quantum(currency), rounding=_MODES[mode])


def parse_money(
    value: object,
    currency: str,
    *,
    field: str = "amount",
    allow_negative: bool = False,
    allow_zero: bool = False,
    code: str = "money.invalid",
) -> Decimal:
    """An amount of money given as a decimal string (or an int or ``Decimal``): plain notation
    (no exponent, no ``NaN``/``Infinity``), at most :data:`MAX_INTEGER_DIGITS` digits before the
    point and no more places than the currency's minor unit. Floats are refused: they are
    inexact. Positive unless ``allow_zero``/``allow_negative``. Raises :class:`InvalidInput`
    with ``code`` naming ``field``."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"{field}: {why}", code=code, field=field, value=_shown(value))

    if isinstance(value, bool | float):
        raise bad(f'give money as a decimal string such as "12.50", not {type(value).__name__} {value!r}')
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise bad(f"{value} is not an amount")
        text = f"{value:f}"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise bad(f"give money as a decimal string, not {type(value).__name__}")
    if len(text) > MAX_INTEGER_DIGITS + 20 or not _PLAIN.fullmatch(text):
        raise bad(f"{_shown(value)} is not a decimal amount such as 12.50")
    digits = text.lstrip("+-").split(".")[0].lstrip("0")
    if len(digits) > MAX_INTEGER_DIGITS:
        raise bad(f"{_shown(value)} has more than {MAX_INTEGER_DIGITS} digits before the decimal point")
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise bad(f"{_shown(value)} is not a decimal amount") from None
    places = minor_exponent(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise bad(f"{_shown(value)} has more decimals than {check_currency(currency)} allows ({places})")
    if amount < 0 and not allow_negative:
        raise bad(f"{_shown(value)} must not be negative")
    if amount == 0 and not allow_zero:
        raise bad("must not be zero")
    return amount


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_money(amount: Decimal, currency: str, *, grouped: bool = False) -> str:
    """``amount`` rounded half-up to the currency's minor unit, as text: ``532.73`` (``532.7300``
    stored), ``1,532.73`` with ``grouped``, ``1500`` for JPY."""
    q = round_money(amount, currency)
    return f"{q:,f}" if grouped else f"{q:f}"


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
