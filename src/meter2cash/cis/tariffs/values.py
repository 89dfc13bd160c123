"""Exact decimal field types for tariff files, each with its rule (see docs/tariffs.md#values).

A value is written as a decimal string or an integer; a TOML float is refused (binary floats
cannot carry money exactly), and so are exponents, ``NaN`` and ``Infinity``. Each type states
the places and digits a value may have, whether it may be negative (only where the field is a
charge *or a credit*, e.g. a TOU ``adder``) and, for percentages, its range. The rule travels
with the type (:class:`ValueRule` in the ``Annotated`` metadata), so the tariff validations in
:mod:`meter2cash.cis.tariffs.checks` find it on every field. Every fault is a
:class:`~pydantic_core.PydanticCustomError` whose type is a stable code (``tariff.float``,
``tariff.negative_amount``, ``tariff.bad_percent`` …); pydantic reports all of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

#: A number as written in a tariff file: optional sign, digits, optional fraction (no exponent).
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def problem(code: str, message: str) -> PydanticCustomError:
    """A pydantic error whose type is the stable ``code`` (braces in ``message`` are safe)."""
    return PydanticCustomError(code, "{message}", {"message": message})


@dataclass(frozen=True, slots=True)
class ValueRule:
    """What a decimal field of a tariff may hold.

    ``kind`` is ``money`` (an amount per month: at most the currency's minor-unit places, checked
    against the tariff's currency), ``rate`` (currency per unit: kWh, kVAh, kW, kVA, day),
    ``kwh`` or ``percent``. ``places`` and ``digits`` bound the decimals and the digits before the
    point; ``signed`` allows a negative value (a credit); ``low``/``high`` bound a percentage.
    """

    kind: str
    places: int
    digits: int
    signed: bool = False
    low: Decimal | None = None
    high: Decimal | None = None

    def parse(self, value: Any) -> Decimal:
        if isinstance(value, bool):
            raise problem("tariff.not_a_number", f"expected a number as a quoted string, got {value!r}")
        if isinstance(value, float):
            raise problem(
                "tariff.float",
                f'{value!r} is a float; quote money and rates so they stay exact, e.g. "{value}"',
            )
        if isinstance(value, Decimal):
            text = f"{value:f}" if value.is_finite() else str(value)
        elif isinstance(value, int | str):
            text = str(value).strip()
        else:
            raise problem(
                "tariff.not_a_number", f"expected a decimal number as a string, got {type(value).__name__}"
            )
        if len(text) > 64 or not _PLAIN.fullmatch(text):
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise problem("tariff.not_a_number", f'{shown!r} is not a decimal number such as "4.50"')
        try:
            d = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise problem("tariff.not_a_number", f"{text!r} is not a decimal number") from None
        whole = text.lstrip("+-").split(".")[0].lstrip("0")
        if len(whole) > self.digits:
            raise problem(
                "tariff.too_many_digits",
                f"{text} has more than {self.digits} digits before the decimal point",
            )
        if d != d.quantize(Decimal(1).scaleb(-self.places)):
            raise problem("tariff.too_many_places", f"{text} has more than {self.places} decimal places")
        if (self.low is not None and d < self.low) or (self.high is not None and d > self.high):
            raise problem("tariff.bad_percent", f"{text} % is outside {self.low}–{self.high} %")
        if d < 0 and not self.signed:
            raise problem(
                "tariff.negative_amount",
                f"{text} must not be negative (only a TOU adder or a fuel adjustment may be: a credit)",
            )
        return d


#: An amount of money per month [currency] (fixed charge, minimum charge): not negative, at most
#: 12 digits and no more places than the currency's minor unit (2 for INR, 0 for JPY).
MONEY = ValueRule("money", places=6, digits=12)
#: A charge per unit [currency/kWh, /kVAh, /kW, /kVA, /day]: not negative, at most 6 places
#: (published rates have them: 0.34810 a day) and 6 digits.
RATE = ValueRule("rate", places=6, digits=6)
#: A charge per unit that is a credit when negative (TOU adder, fuel adjustment).
SIGNED_RATE = ValueRule("rate", places=6, digits=6, signed=True)
#: An energy quantity [kWh]: not negative, at most 3 places (Wh) and 12 digits.
KWH = ValueRule("kwh", places=3, digits=12)
#: A percentage [%] of a whole (taxes, duties, demand floors, power-factor steps): 0–100.
PERCENT = ValueRule("percent", places=4, digits=9, low=Decimal(0), high=Decimal(100))
#: A surcharge or rebate [%] on an amount due (prompt-payment rebate, late-payment surcharge):
#: 0–25, more is a misplaced decimal point.
TERMS_PERCENT = ValueRule("percent", places=4, digits=9, low=Decimal(0), high=Decimal(25))

MoneyValue = Annotated[Decimal, BeforeValidator(MONEY.parse), MONEY]
RateValue = Annotated[Decimal, BeforeValidator(RATE.parse), RATE]
SignedRateValue = Annotated[Decimal, BeforeValidator(SIGNED_RATE.parse), SIGNED_RATE]
KwhValue = Annotated[Decimal, BeforeValidator(KWH.parse), KWH]
PercentValue = Annotated[Decimal, BeforeValidator(PERCENT.parse), PERCENT]
TermsPercentValue = Annotated[Decimal, BeforeValidator(TERMS_PERCENT.parse), TERMS_PERCENT]
