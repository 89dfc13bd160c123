"""The usage sources a platform can bill from, by name (``M2C_USAGE_SOURCE``)."""

from __future__ import annotations

from meter2cash.mdm.usage.external import ExternalUsage
from meter2cash.mdm.usage.local import LocalUsage
from meter2cash.mdm.usage.port import UsageFactory

SOURCES = ("local", "external")


def usage_factory(name: str) -> UsageFactory:
    """The factory of the usage source ``name``: ``local`` reads this platform's measurement
    store, ``external`` the determinants an external MDM delivered."""
    if name == "local":
        return LocalUsage
    if name == "external":
        return ExternalUsage
    raise ValueError(f"unknown usage source {name!r} (one of {', '.join(SOURCES)})")
