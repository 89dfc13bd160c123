"""Tariff definitions as validated pydantic models (parsed from TOML, see docs/tariffs.md).

Every amount and rate is a :class:`~decimal.Decimal` given as a TOML string or integer; a TOML
float is refused (binary floats cannot carry money exactly). Each decimal field's type states its
rule (:mod:`meter2cash.cis.tariffs.values`: places, digits, sign, range); the parts of a version
are in :mod:`meter2cash.cis.tariffs.charges`; a whole version is checked by the validations of
:mod:`meter2cash.cis.tariffs.checks`. Every fault carries a stable code
(``tariff.negative_amount``, ``tariff.bad_percent``, ``tariff.unknown_currency`` …).
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meter2cash.cis.parties.constants import CUSTOMER_CLASSES
from meter2cash.cis.tariffs.charges import Rounding, TariffModel, TariffVersionBase, iso_currency
from meter2cash.cis.tariffs.checks import check_version
from meter2cash.cis.tariffs.values import problem

#: The error type of a version's failed :data:`~meter2cash.cis.tariffs.checks.VERSION_CHECKS`;
#: its ``ctx["problems"]`` lists them.
CHECKS_FAILED = "tariff.checks"


class TariffVersionDef(TariffVersionBase):
    """One version of a tariff, self-contained (code, currency and rounding copied from the file),
    checked as a whole by :data:`~meter2cash.cis.tariffs.checks.VERSION_CHECKS` whenever it is
    validated."""

    @model_validator(mode="after")
    def _checked(self) -> TariffVersionDef:
        """Run every version validation; all their problems travel in one error (``ctx``)."""
        problems = check_version(self)
        if problems:
            listed = "; ".join(f"{p.field}: {p.message} ({p.code})" for p in problems)
            raise PydanticCustomError(
                CHECKS_FAILED, "{message}", {"message": listed, "problems": [p.to_dict() for p in problems]}
            )
        return self


class TariffDefinition(TariffModel):
    """A tariff file: identity, currency, rounding and its versions over time."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    currency: str
    customer_class: str = "residential"
    rounding: Rounding = Rounding()
    versions: list[TariffVersionDef] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return iso_currency(v)

    @field_validator("customer_class")
    @classmethod
    def _class(cls, v: str) -> str:
        if v not in CUSTOMER_CLASSES:
            raise problem("tariff.bad_choice", f"customer_class must be one of {', '.join(CUSTOMER_CLASSES)}")
        return v

    @field_validator("versions", mode="before")
    @classmethod
    def _in_currency(cls, versions: Any, info: ValidationInfo) -> Any:
        """Each version is checked in the file's currency (money in its minor unit)."""
        currency = info.data.get("currency")
        if not currency or not isinstance(versions, list):
            return versions
        return [{**v, "currency": currency} if isinstance(v, dict) else v for v in versions]

    @field_validator("versions")
    @classmethod
    def _no_overlap(cls, versions: list[TariffVersionDef]) -> list[TariffVersionDef]:
        vs = sorted(versions, key=lambda v: v.effective_from)
        for a, b in itertools.pairwise(vs):
            if a.effective_from == b.effective_from:
                raise problem("tariff.version_overlap", f"two versions start on {a.effective_from}")
            if a.effective_to is None or a.effective_to >= b.effective_from:
                raise problem(
                    "tariff.version_overlap",
                    f"version from {a.effective_from} overlaps the one from {b.effective_from}; "
                    "give it an effective_to before the next version starts",
                )
        return vs

    @model_validator(mode="after")
    def _fill_versions(self) -> TariffDefinition:
        filled = [
            v.model_copy(
                update={
                    "code": self.code,
                    "name": v.name or self.name,
                    "currency": self.currency,
                    "customer_class": self.customer_class,
                    "rounding": v.rounding or self.rounding,
                }
            )
            for v in self.versions
        ]
        object.__setattr__(self, "versions", filled)
        return self

    def version_on(self, on: date) -> TariffVersionDef | None:
        for v in reversed(self.versions):
            if v.effective_from <= on and (v.effective_to is None or on <= v.effective_to):
                return v
        return None
