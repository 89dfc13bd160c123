"""Readers and writers of external formats (reading files: CSV and JSON, see ``docs/formats.md``)."""

from meter2cash.mdm.formats.readings import FORMATS, detect_format, parse_readings
from meter2cash.mdm.formats.readings_csv import parse_csv
from meter2cash.mdm.formats.readings_json import parse_json
from meter2cash.mdm.formats.readings_parsed import ParsedEvent, ParsedReadings

__all__ = [
    "FORMATS",
    "ParsedEvent",
    "ParsedReadings",
    "detect_format",
    "parse_csv",
    "parse_json",
    "parse_readings",
]
