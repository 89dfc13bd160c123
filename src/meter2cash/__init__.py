"""meter2cash: an open-source meter-to-cash platform (MDM + CIS)."""

__version__ = "0.1.0"
