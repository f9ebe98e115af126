"""`oj package`: a release as a Frictionless data package (https://frictionlessdata.io),
with a CITATION.cff, for depositing or sharing a citable copy.

Resources are CSV (UTF-8, one file per table): every Frictionless tool reads it, and the
validator checks types, required columns, allowed values and unique keys against the
schema. List columns are JSON arrays in their cell (Frictionless type `array`); a null
is written `\\N`, so an empty string stays an empty string. Field types and descriptions
come from `flows.schemas`, as in the data dictionary.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'`
in front (OWASP's advice against CSV injection): a spreadsheet would otherwise run page
text as a formula. The Parquet files (`oj export`, `datasets/latest/`) keep the text as
printed; the descriptor says so in each resource's description.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from flows import outfolder, storage
from flows.dictionary import allowed_values
from flows.errors import plural
from flows.schemas import TABLE_DESCRIPTIONS, TABLES, describe

PROJECT = "oppna-jamforelser"
MISSING = "\\N"
#: Unique keys the validator checks (tables whose key has no nullable column).
PRIMARY_KEYS = {
    "pages": ["snapshot_id"],
    "findings": ["finding_id"],
    "indicators": ["indicator_id"],
    "indicator_links": ["finding_id"],
    "runs": ["release"],
}


def citation_line(release: dict[str, Any]) -> str:
    """How to cite a release, in one line."""
    day = _day(release["finished_at"])
    return (
        f"Öppna jämförelser: municipal pages as data ({PROJECT}), release "
        f"{release['release']}, parser {release['parser_version']}, published {day}."
    )


def _day(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def _timestamp(value: Any) -> str:
    """RFC 3339 in UTC, as Frictionless wants `created`."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def _frictionless_field(table: str, field: pa.Field, description: str) -> dict[str, Any]:
    type_ = field.type
    if pa.types.is_list(type_):
        kind, extra = "array", {}
    elif pa.types.is_integer(type_):
        kind, extra = "integer", {}
    elif pa.types.is_floating(type_):
        kind, extra = "number", {}
    elif pa.types.is_boolean(type_):
        kind, extra = "boolean", {"trueValues": ["true"], "falseValues": ["false"]}
    elif pa.types.is_date(type_):
        kind, extra = "date", {}
    elif pa.types.is_timestamp(type_):
        kind, extra = "datetime", {}
    else:
        kind, extra = "string", {}
    out: dict[str, Any] = {"name": field.name, "type": kind, "description": description, **extra}
    constraints: dict[str, Any] = {}
    if not field.nullable:
        constraints["required"] = True
    values = allowed_values(table, field.name)
    if values:
        constraints["enum"] = list(values)
    if constraints:
        out["constraints"] = constraints
    return out


def table_schema(table: str) -> dict[str, Any]:
    """The Frictionless table schema of a published table."""
    descriptions = describe(table)
    schema: dict[str, Any] = {
        "fields": [_frictionless_field(table, f, descriptions[f.name]) for f in TABLES[table]],
        "missingValues": [MISSING],
    }
    if table in PRIMARY_KEYS:
        schema["primaryKey"] = PRIMARY_KEYS[table]
    return schema


def _cell(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
#: Injection"): page text such as `=HYPERLINK("http://evil.example/x","klicka") 70 procent`
#: would run when the CSV is opened in Excel or LibreOffice.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The prefix that makes such a cell plain text in a spreadsheet (OWASP's recommendation).
NEUTRALISER = "'"


CSV_NOTE = (
    "A text cell that starts with =, +, -, @, a tab or a carriage return is written with a "
    "single quote (') in front, so a spreadsheet shows it instead of running it as a "
    "formula (OWASP: CSV injection); the Parquet files keep the text as printed."
)


def neutralise(text: str) -> str:
    """A text cell as a spreadsheet shows it without running it: `'` before a cell that
    starts with `=`, `+`, `-`, `@`, a tab or a carriage return."""
    return NEUTRALISER + text if text.startswith(FORMULA_STARTS) else text


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _write_csv(table: pa.Table, path: Path) -> int:
    # Only text columns: a number such as -1.5 is a number in every spreadsheet, and a
    # list column is a JSON array (it starts with "[").
    text = [_is_text(field.type) for field in table.schema]
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.column_names)
        for batch in table.to_batches(max_chunksize=10_000):
            for row in batch.to_pylist():
                writer.writerow(
                    [
                        neutralise(value) if is_text and value is not None else _cell(value)
                        for is_text, value in zip(text, row.values(), strict=True)
                    ]
                )
                rows += 1
    return rows


#: The marker `oj package` leaves in a folder it wrote (see flows/outfolder.py).
MARKER = ".oj-package"
TOOL = "oj package"


def _legacy_marker(folder: Path) -> dict[str, Any] | None:
    """A package written before `oj package` left its marker: its descriptor names what
    it wrote."""
    try:
        descriptor = json.loads((folder / "datapackage.json").read_text("utf-8"))
        paths = [str(r["path"]) for r in descriptor["resources"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(descriptor.get(PROJECT), dict):
        return None
    return {"written_by": TOOL, "folders": ["data"],
            "files": ["datapackage.json", "CITATION.cff", *paths]}  # fmt: skip


def write_package(
    datasets_dir: Path | str, out: Path | str, release: int | None = None
) -> dict[str, Any]:
    """Write the data package of a release (default: the latest) to `out`; its descriptor.

    `out` may be new, empty, or a package this function wrote: the package is built in a
    sibling folder and swapped in whole (flows/outfolder.py), so a kill leaves the previous
    complete package or the new one, never a mix; a folder holding other files is refused
    before anything is written."""
    outfolder.check_out(out, TOOL, MARKER, _legacy_marker)
    found = storage.get_release(datasets_dir, release)
    descriptor: dict[str, Any] = {}

    def write(staging: Path) -> None:
        descriptor.update(_write_package(datasets_dir, staging, found))

    marker = {"written_by": TOOL, "release": int(found["release"]), "folders": ["data"],
              "files": ["datapackage.json", "CITATION.cff",
                        *(f"data/{name}.csv" for name in TABLES)]}  # fmt: skip
    outfolder.replace_folder(out, TOOL, MARKER, marker, write, _legacy_marker)
    return descriptor


def _write_package(datasets_dir: Path | str, out: Path, found: dict[str, Any]) -> dict[str, Any]:
    (out / "data").mkdir(parents=True, exist_ok=True)
    resources = []
    for name in TABLES:
        path = out / "data" / f"{name}.csv"
        rows = _write_csv(storage.load_arrow(name, found["release"], datasets_dir), path)
        about = TABLE_DESCRIPTIONS[name]
        resources.append(
            {
                "name": name,
                "path": f"data/{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "description": f"One row is {about['row']}. Key: {about['key']}. "
                f"Source: {about['source']}. {plural(rows, 'row')}. {CSV_NOTE}",
                "schema": table_schema(name),
            }
        )
    day = _day(found["finished_at"])
    descriptor = {
        "profile": "tabular-data-package",
        "name": f"{PROJECT}-release-{found['release']}",
        "title": f"Öppna jämförelser: municipal pages as data, release {found['release']}",
        "description": (
            "National statements with their share and each municipality's local answer, "
            "municipalities' result tables against the national figure and counties' "
            "indicator cards (entity_kind, entity, national_measure), parsed from Swedish "
            "municipal web pages about Öppna jämförelser (Open "
            "Comparisons of social services, Socialstyrelsen and SKR), with their history "
            "across page snapshots. See docs/data-dictionary.md of the project. " + CSV_NOTE
        ),
        "version": str(found["release"]),
        "created": _timestamp(found["finished_at"]),
        "keywords": ["Öppna jämförelser", "socialtjänst", "kommuner", "open comparisons"],
        "sources": _sources(datasets_dir, found["release"]),
        "citation": citation_line(found),
        PROJECT: {
            "release": found["release"],
            "parser_version": found["parser_version"],
            "delta_versions": {
                name: int(found[f"{name}_version"]) for name in TABLES if name != "runs"
            },
        },
        "resources": resources,
    }
    _write_text(out / "datapackage.json", json.dumps(descriptor, ensure_ascii=False, indent=2))
    _write_text(out / "CITATION.cff", _citation_cff(found, day))
    return descriptor


def _sources(datasets_dir: Path | str, release: int) -> list[dict[str, str]]:
    """The pages the release was parsed from: one source per page URL (not per capture)."""
    pages = storage.load_arrow("pages", release, datasets_dir, columns=["url", "source"])
    urls = sorted({url for url in pages.column("url").to_pylist() if url})
    return [{"title": url, "path": url} for url in urls]


def _citation_cff(found: dict[str, Any], day: str) -> str:
    title = f"Öppna jämförelser: municipal pages as data, release {found['release']}"
    return (
        "cff-version: 1.2.0\n"
        "message: If you use this dataset, please cite this release of it.\n"
        "type: dataset\n"
        f'title: "{title}"\n'
        "authors:\n"
        f'  - name: "{PROJECT} contributors"\n'
        f'version: "release {found["release"]} (parser {found["parser_version"]})"\n'
        f"date-released: {day}\n"
        "abstract: >-\n"
        "  National statements with their share and each municipality's local answer,\n"
        "  parsed from Swedish municipal web pages about Öppna jämförelser, with their\n"
        "  history across page snapshots.\n"
        "keywords:\n"
        '  - "Öppna jämförelser"\n'
        "  - open comparisons\n"
        "  - social services\n"
    )


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text if text.endswith("\n") else text + "\n", "utf-8")
    os.replace(partial, path)
