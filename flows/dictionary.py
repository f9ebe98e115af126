"""The data dictionary, generated from the schema declarations (`flows.schemas`): every
table and column with its type, whether it may be null, its allowed values and its
description. `python -m flows.dictionary` prints docs/data-dictionary.md; a test fails
when that file is stale. The data package (`flows.package`) describes fields from here.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from flows.schemas import (
    FIXED_SETS,
    PAGE_REJECT_REASONS,
    TABLE_DESCRIPTIONS,
    TABLES,
    describe,
)
from parsers import FLAGS, REJECT_REASONS

DICTIONARY_PATH = "docs/data-dictionary.md"


def type_name(type_: pa.DataType) -> str:
    """A column type as analysts read it: string, integer, number, boolean, date,
    timestamp (UTC), list of ..."""
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return f"list of {type_name(type_.value_type)}"
    if pa.types.is_integer(type_):
        return "integer"
    if pa.types.is_floating(type_):
        return "number"
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_date(type_):
        return "date"
    if pa.types.is_timestamp(type_):
        return f"timestamp ({type_.tz})" if type_.tz else "timestamp"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    return str(type_)


def allowed_values(table: str, column: str) -> tuple[str, ...] | None:
    return FIXED_SETS.get((table, column))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def data_dictionary() -> str:
    """docs/data-dictionary.md, as Markdown."""
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated from flows/schemas.py by `python -m flows.dictionary`; do not edit. -->",
        "",
        "Every table of a release, as published under `datasets/` (Delta Lake), in",
        "`datasets/latest/<table>.parquet/` (plain Parquet of the latest release, a folder",
        "of parts per table), by `oj export` and in the data package (`oj package`). Types:",
        "*string*, *integer*, *number* (floating point), *boolean*, *date*, *timestamp (UTC)*,",
        "*list of ...*.",
        "",
        "| table | one row is | key |",
        "|---|---|---|",
    ]
    for name in TABLES:
        about = TABLE_DESCRIPTIONS[name]
        lines.append(f"| [`{name}`](#{name}) | {_cell(about['row'])} | {_cell(about['key'])} |")
    for name, schema in TABLES.items():
        about = TABLE_DESCRIPTIONS[name]
        descriptions = describe(name)
        lines += [
            "",
            f"## {name}",
            "",
            f"One row is {about['row']}. Key: {about['key']}. Source: {about['source']}.",
            "",
            "| column | type | null | allowed values | description |",
            "|---|---|---|---|---|",
        ]
        for field in schema:
            values = allowed_values(name, field.name)
            allowed = ", ".join(f"`{v}`" for v in values) if values else ""
            lines.append(
                f"| `{field.name}` | {type_name(field.type)} | "
                f"{'yes' if field.nullable else 'no'} | {allowed} | "
                f"{_cell(descriptions[field.name])} |"
            )
    for title, codes in (
        ("`rejects.reason`", {**REJECT_REASONS, **PAGE_REJECT_REASONS}),
        ("`findings.flags`", FLAGS),
    ):
        lines += ["", f"## Codes of {title}", "", "| code | meaning |", "|---|---|"]
        lines += [f"| `{code}` | {_cell(meaning)} |" for code, meaning in codes.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(data_dictionary())
