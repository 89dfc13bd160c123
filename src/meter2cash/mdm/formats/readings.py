"""Reading files (CSV, JSON) parsed into flat NumPy/pandas columns, with one Problem per bad record.

The readers know nothing about meters or the database: they turn bytes into a
:class:`~.readings_parsed.ParsedReadings` (one row per value, timestamps as UTC epoch microseconds)
and report rows they cannot read. :func:`parse_readings` chooses the reader
(:mod:`.readings_csv`, :mod:`.readings_json`). Meter/channel resolution, alignment and merging
happen in :mod:`meter2cash.mdm.ingest`. The formats are described in ``docs/formats.md``.
"""

from __future__ import annotations

from meter2cash.core.errors import M2CError
from meter2cash.mdm.formats.readings_csv import parse_csv
from meter2cash.mdm.formats.readings_json import parse_json
from meter2cash.mdm.formats.readings_parsed import ParsedReadings

FORMATS = ("csv", "json")


def detect_format(data: bytes, filename: str = "") -> str:
    """``csv`` or ``json`` from the file extension, else from the first non-blank byte."""
    name = filename.lower()
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head[:1] in (b"{", b"["):
        return "json"
    return "csv"


def parse_readings(data: bytes, fmt: str | None = None, *, filename: str = "") -> ParsedReadings:
    """Parse a reading file; raise ``ingest.bad_file`` when the file as a whole is unreadable."""
    fmt = (fmt or detect_format(data, filename)).lower()
    if fmt == "csv":
        return parse_csv(data, source=filename)
    if fmt == "json":
        return parse_json(data, source=filename)
    raise M2CError(f"unknown reading format {fmt!r}; use one of {', '.join(FORMATS)}", code="ingest.bad_file")
