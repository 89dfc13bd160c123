"""Reading master-data bundles from JSON, a directory of CSV files, or a .zip of CSV files.

Each entity becomes a :class:`Section`: the records with the line each came from (1-based index in
a JSON array, the physical line number in a CSV file) and the source name used in problems.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter2cash.core.errors import InvalidInput, NotFound, Problem
from meter2cash.core.jsonsafe import loads_bounded
from meter2cash.integration.masterdata_spec import ENTITY


@dataclass(slots=True)
class Section:
    """The records of one entity: ``(line, raw record)`` pairs and where they came from."""

    source: str
    records: list[tuple[int, Any]] = field(default_factory=list)


Parsed = tuple[dict[str, Section], list[Problem]]


def sections_from_json(bundle: dict[str, Any]) -> Parsed:
    """Sections of a JSON bundle; unknown top-level keys and non-arrays become problems."""
    sections: dict[str, Section] = {}
    problems: list[Problem] = []
    for name, items in bundle.items():
        if name not in ENTITY:
            if not str(name).startswith("$"):  # "$schema", "$comment" … are allowed
                msg = f"{name!r} is not a master-data entity; expected one of {', '.join(ENTITY)}"
                problems.append(Problem("masterdata.unknown_entity", msg, None, None, str(name)))
            continue
        if not isinstance(items, list):
            problems.append(Problem("masterdata.not_a_list", f"{name} must be an array", None, None, name))
            continue
        sections[name] = Section(name, [(i, r) for i, r in enumerate(items, 1)])
    return sections, problems


def section_from_csv(name: str, text: str, source: str) -> Section:
    """One entity's CSV text; blank cells count as not given, line numbers count the header."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    section = Section(source)
    for row in reader:
        rec = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
        if not any(rec.values()):
            continue
        section.records.append((reader.line_num, rec))
    return section


def _csv_files(files: dict[str, bytes]) -> Parsed:
    sections: dict[str, Section] = {}
    problems: list[Problem] = []
    for source in sorted(files):
        stem = Path(source).stem
        if stem not in ENTITY:
            msg = f"{source} does not name a master-data entity; expected one of {', '.join(ENTITY)}"
            problems.append(Problem("masterdata.unknown_entity", msg, None, None, source))
            continue
        try:
            text = files[source].decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem("masterdata.not_utf8", f"{source} is not UTF-8: {exc}", None, None, source)
            )
            continue
        sections[stem] = section_from_csv(stem, text, Path(source).name)
    return sections, problems


def read_bundle_path(path: Path) -> Parsed:
    """Sections of a bundle file or directory. Unreadable containers raise :class:`M2CError`."""
    if not path.exists():
        raise NotFound(f"{path} does not exist", code="masterdata.file_not_found", path=str(path))
    if path.is_dir():
        return _csv_files({p.name: p.read_bytes() for p in sorted(path.glob("*.csv"))})
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                files = {
                    n: zf.read(n) for n in zf.namelist() if n.lower().endswith(".csv") and "__MACOSX" not in n
                }
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"{path} is not a zip file: {exc}", code="masterdata.invalid_bundle") from exc
        return _csv_files({Path(n).name: b for n, b in files.items()})
    if path.suffix.lower() == ".csv":
        return _csv_files({path.name: path.read_bytes()})
    try:
        bundle = loads_bounded(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}", code="masterdata.invalid_json") from exc
    if not isinstance(bundle, dict):
        raise InvalidInput(
            f"{path}: a master-data bundle must be a JSON object of entity arrays",
            code="masterdata.invalid_bundle",
        )
    return sections_from_json(bundle)
