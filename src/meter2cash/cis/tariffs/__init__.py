"""Tariffs: the file format (TOML), its validated model, and the stored versions."""

from meter2cash.cis.tariffs.loader import (
    TariffFileError,
    load_tariff_file,
    parse_tariff,
    store_tariff,
    tariff_version_for,
)
from meter2cash.cis.tariffs.model import TariffDefinition, TariffVersionDef

__all__ = [
    "TariffDefinition",
    "TariffFileError",
    "TariffVersionDef",
    "load_tariff_file",
    "parse_tariff",
    "store_tariff",
    "tariff_version_for",
]
