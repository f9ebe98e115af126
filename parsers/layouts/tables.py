"""Result tables: one row per indicator, the entity's figure per year beside the nation's.

    Öppna jämförelser vård och omsorg om äldre 2022, ett urval av frågor
    Frågor | Växjö 2021 | Växjö 2022 | Medelvärde riket 2022
    Andel som sammantaget är mycket nöjda med hemtjänsten | 81 | 83 | 86

In the line form every cell is a line of its own, in column order: an HTML `<table>`
(each `<th>`/`<td>` is a block) and a text extract with a cell per line give the same
lines. A text extract may also print a row on one line with " | " between cells.

Recognised:
- A header of at least two columns, each known by its text: the entity's name with a
  year ("Växjö 2021") or a bare year ("2021": the entity's column, the name left out),
  the nation ("riket", "Riket 2022", "Medelvärde riket 2022", "Sverige", "alla
  kommuner", "rikssnitt"), the county ("länet", "Kronobergs län 2022"). At least one
  entity column and one nation or county column, or it is not a result table. A label
  column header before them ("Frågor", "Indikator") is optional.
- Rows: a label, then one cell per column. A cell is a figure only when it is nothing
  but a number (decimal comma or point) and perhaps "%"/"procent"; "–", "-", "..", "…",
  "x" are missing values; a bound ("över 74 procent", "> 74") or a rank ("plats 23")
  is no figure (null).
- One finding per row and entity column: `local_value` the entity's figure,
  `national_value` the nation's figure for the same year (a nation column without a
  year only when the entity has one year), the year from the column header (basis
  "heading"). `national_percent` only where the row measures a share (label "Andel
  ..."); an index (NKI, "poäng"), a count ("Antal"), a mean of days or scores stay in
  `national_value` with `national_measure` saying what it is. `comparison` is the
  entity's figure against the nation's; better/worse only from the `directions`
  mapping.

Deliberately not:
- The county ("länet") column is no national figure; it is kept nowhere (Finding has
  no county-comparison field) but lets a municipality's table against its county be
  recognised.
- Columns of other municipalities are skipped; with no configured entity and more than
  one name, no column is the entity's and there is no table.
- Rank lists ("Plats | Kommun | NKI 2022"), rows of ranks ("Placering"), tables without
  a nation or county column: no findings. A row with fewer cells than columns (an empty
  cell prints nothing) is a reject, never guessed into place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from parsers.layouts import PageContext, compare, judged
from parsers.lines import Line, normalize_space
from parsers.records import Finding, Reject

_YEAR = r"(?:19|20)\d\d"
_NATION = re.compile(
    r"(?P<mean>(?:medelvärde|medel|genomsnitt|snitt|median)(?:et)?\s+(?:för\s+|i\s+)?)?"
    r"(?:riket|sverige|landet|alla\s+kommuner)|riks(?:genom)?snitt(?:et)?",
    re.IGNORECASE,
)
_COUNTY = re.compile(
    r"(?:(?:medelvärde|genomsnitt|snitt)\s+(?:för\s+|i\s+)?)?"
    r"(?:länet|regionen|länets\s+kommuner|[A-ZÅÄÖ][\wåäö]*\s+län)",
    re.IGNORECASE,
)
# Municipality names: "Växjö", "Upplands Väsby", "Malung-Sälen", "Växjö kommun".
_NAME = re.compile(
    r"[A-ZÅÄÖ][\wåäöéü-]*(?:\s+[A-ZÅÄÖ][\wåäöéü-]*){0,2}(?:\s+(?:kommun|stad|stadsdel))?"
)
# Capitalised words that head a column but name no entity: "NKI 2022" in a rank list,
# "Resultat 2022", "Plats".
_NOT_A_NAME = frozenset(
    [
        "resultat",
        "frågor",
        "fråga",
        "indikator",
        "indikatorer",
        "nki",
        "index",
        "plats",
        "placering",
        "rank",
        "ranking",
        "kommun",
        "kommuner",
        "andel",
        "antal",
        "år",
        "mått",
        "nyckeltal",
        "totalt",
        "öppna",
        "jämförelse",
        "poäng",
        "värde",
        "mål",
        "utfall",
    ]
)
_YEAR_RE = re.compile(rf"\b{_YEAR}\b")
# Column headers are short ("Medelvärde riket 2022", "Upplands Väsby 2021"); joined by a
# text extract with the first row's label they stay within a label's length.
_HEADER_MAX = 80
_JOINED_MAX = 600
_REFERENCE_WORDS = ("rike", "sverige", "landet", "kommuner", "län", "region", "snitt")
_HEADER = re.compile(rf"(?P<name>.*?)[\s,]*(?:år\s+)?(?P<year>{_YEAR})?")
# A text extract joins a line that starts in lower case to the one before (parsers/lines:
# "Växjö 2022" + "riket 2022" -> "Växjö 2022 riket 2022"): split after a year and before
# a lower-case nation or county word that is not part of "Medelvärde riket".
_HEADER_JOIN = re.compile(
    rf"(?<=\b{_YEAR})\s+|(?<!medelvärde)(?<!genomsnitt)(?<!för)(?<!i)\s+"
    r"(?=(?:riket|länet|alla kommuner|sverige)\b)"
)
_FIGURE = r"\d{1,3}(?:\s\d{3})*(?:[,.]\d+)?|\d+(?:[,.]\d+)?"
_FIGURE_CELL = re.compile(rf"(?P<num>{_FIGURE})\s*(?:%|procent)?", re.IGNORECASE)
_MISSING_CELL = re.compile(r"[-–—]|\.{2,3}|…|x|\*", re.IGNORECASE)
# Bounds and ranks printed in a cell: a cell, but no figure.
_OTHER_CELL = re.compile(
    rf"(?:över|under|minst|högst|mer än|mindre än|drygt|knappt|plats|[<>≤≥])\s*(?:{_FIGURE})"
    r"\s*(?:%|procent)?",
    re.IGNORECASE,
)
# The same text-extract join inside the body: "86" + "andelen ..." -> "86 andelen ...".
_VALUE_THEN_LABEL = re.compile(
    rf"(?P<value>{_FIGURE}\s*(?:%|procent)?|[-–—]|\.{{2,3}}|…)\s+(?P<rest>[a-zåäö].*)",
    re.IGNORECASE | re.DOTALL,
)
_LABEL_HEADER = re.compile(
    r"frågor|fråga|indikator\w*|nyckeltal|mått|område|kvalitetsindikator\w*", re.IGNORECASE
)
_TRAILING_LOWER_CELL = re.compile(
    rf"(?P<head>.*\S)\s+(?P<cell>plats\s*\d+|(?:över|under|minst|högst|mer än|mindre än"
    rf"|drygt|knappt)\s*(?:{_FIGURE})\s*(?:%|procent))",
    re.DOTALL,
)
_RANK_ROW = re.compile(r"\b(?:placering\w*|plats|rank\w*|rangordning)\b", re.IGNORECASE)
_INDEX = re.compile(r"\b(?:NKI|index\w*|poäng)\b", re.IGNORECASE)
_COUNT = re.compile(r"^\s*antal(?:et)?\b", re.IGNORECASE)
_SHARE_OF_MUNICIPALITIES = re.compile(
    r"\bandel(?:en)?\s+(?:av\s+)?kommuner(?:na)?\b|^\s*kommuner\s+som\b", re.IGNORECASE
)
# "Väntetid till första samtal, medelvärde dagar": a mean of days, no share.
_MEAN = re.compile(r"\b(?:medelvärde|genomsnitt\w*|dagar|timmar|minuter)\b", re.IGNORECASE)
_SHARE = re.compile(r"\bandel(?:en)?\b|\bprocent\b|%", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Cell:
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class _Column:
    kind: str  # "entity", "nation", "county", "other"
    name: str | None
    year: int | None
    mean: bool = False


@dataclass(frozen=True, slots=True)
class _Table:
    caption: str
    columns: tuple[_Column, ...]
    rows: tuple[tuple[_Cell, tuple[_Cell, ...]], ...]  # label, its cells (maybe too few)


def _cells(lines: Sequence[Line]) -> list[_Cell]:
    out: list[_Cell] = []
    for line in lines:
        pieces = (
            [normalize_space(p) for p in line.text.split("|")] if "|" in line.text else [line.text]
        )
        if "|" in line.text:  # "| a | b |": the outer bars frame the row
            if pieces and not pieces[0]:
                pieces = pieces[1:]
            if pieces and not pieces[-1]:
                pieces = pieces[:-1]
        for piece in pieces:
            joined = (
                _VALUE_THEN_LABEL.fullmatch(piece) if piece[:1].isdigit() or piece[:1] in "-–—.…"
                else None
            )  # fmt: skip
            header = _header_then_label(piece)
            if header:
                out.extend(_Cell(text, line.number) for text in header)
            elif joined and not _column_list(piece):
                out.append(_Cell(joined.group("value"), line.number))
                out.append(_Cell(joined.group("rest"), line.number))
            else:
                # "Placering bland landets kommuner" + "plats 41" + "plats 23" joined by a
                # text extract (lower-case starts): the trailing cells split off again.
                tail: list[str] = []
                while (cut := _TRAILING_LOWER_CELL.fullmatch(piece)) is not None:
                    tail.insert(0, cut.group("cell"))
                    piece = cut.group("head")
                out.append(_Cell(piece or "–", line.number))  # an empty "| |" cell
                out.extend(_Cell(text, line.number) for text in tail)
    return out


def _header_then_label(text: str) -> list[str] | None:
    """A text extract's header cells joined with the first row's label when the label
    starts in lower case ("2022 länet 2022 riket 2022 andel kommuner som har ..."): the
    cells, else None."""
    if len(text) > _JOINED_MAX or not _YEAR_RE.search(text):
        return None  # every joined header holds a year; a long paragraph is no header
    pieces = [piece for piece in _HEADER_JOIN.split(text) if piece.strip()]
    if len(pieces) < 2 or _column(text) is not None:
        return None
    if all(_column(piece) is not None for piece in pieces[:-1]):
        return pieces
    return None


@lru_cache(maxsize=16384)  # pure: the same headers and labels recur across captures
def _column(text: str) -> _Column | None:
    if len(text) > _HEADER_MAX:
        return None
    lowered = text.lower()
    if not _YEAR_RE.search(text) and not any(word in lowered for word in _REFERENCE_WORDS):
        return None  # cheap: most lines of a page are neither a year nor a reference
    match = _HEADER.fullmatch(text.strip())
    if not match:
        return None
    name = match.group("name").strip(" ,")
    year = int(match.group("year")) if match.group("year") else None
    if not name:
        return _Column("entity", None, year) if year is not None else None
    nation = _NATION.fullmatch(name)
    if nation:
        mean = bool(nation.group("mean")) and "median" not in name.lower()
        return _Column("nation", None, year, mean)
    if _COUNTY.fullmatch(name):
        return _Column("county", None, year)
    if year is not None and _NAME.fullmatch(name) and name.split()[0].lower() not in _NOT_A_NAME:
        return _Column("entity", name, year)
    return None


@lru_cache(maxsize=16384)
def _column_list(text: str) -> tuple[_Column, ...] | None:
    """The columns one header cell holds (several when a text extract joined them)."""
    single = _column(text)
    if single is not None:
        return (single,)
    pieces = [piece for piece in _HEADER_JOIN.split(text) if piece.strip()]
    if len(pieces) < 2:
        return None
    columns = tuple(_column(piece) for piece in pieces)
    return None if any(c is None for c in columns) else columns  # type: ignore[return-value]


def _value_like(text: str) -> bool:
    return bool(
        _FIGURE_CELL.fullmatch(text) or _MISSING_CELL.fullmatch(text) or _OTHER_CELL.fullmatch(text)
    )


def _figure(text: str) -> float | None:
    match = _FIGURE_CELL.fullmatch(text)
    if not match:
        return None  # a missing value, a bound or a rank: no figure
    return float(match.group("num").replace(" ", "").replace(",", "."))


def _own_columns(columns: list[_Column], entity: str | None) -> tuple[_Column, ...]:
    """Entity columns of the configured entity (or of the one name the header has)."""
    names = {c.name for c in columns if c.kind == "entity" and c.name is not None}
    if entity is not None:
        wanted = entity.casefold()
        own = {n for n in names if n.casefold() == wanted or n.casefold().startswith(wanted + " ")
               or n.casefold() == wanted + "s"}  # fmt: skip
    else:
        own = names if len(names) == 1 else set()
    out = []
    for column in columns:
        if column.kind == "entity" and column.name is not None and column.name not in own:
            column = _Column("other", column.name, column.year)
        out.append(column)
    return tuple(out)


def _tables(lines: Sequence[Line], entity: str | None) -> list[_Table]:
    cells = _cells(lines)
    tables: list[_Table] = []
    index = 0
    while index < len(cells):
        start = index
        if _column_list(cells[index].text) is None and not _value_like(cells[index].text):
            index += 1  # a label column header ("Frågor"), or any text before a table
        columns: list[_Column] = []
        while index < len(cells) and (found := _column_list(cells[index].text)) is not None:
            columns.extend(found)
            index += 1
        own = _own_columns(columns, entity)
        kinds = {c.kind for c in own}
        if len(own) < 2 or "entity" not in kinds or not kinds & {"nation", "county"}:
            # Past the whole header run: its tail alone ("Lindby 2022 | Riket 2022" of
            # "Ekås 2022 | Lindby 2022 | Riket 2022") is not a table of its own.
            index = max(index, start + 1)
            continue
        # The table's caption is the line before its header ("Öppna jämförelser vård och
        # omsorg om äldre 2022, ett urval av frågor"), before the label column's header
        # ("Frågor") when there is one; else the header itself.
        first = index - sum(1 for c in cells[start:index] if _column_list(c.text) is not None)
        before = first
        if first > 0 and _LABEL_HEADER.fullmatch(cells[first - 1].text):
            before = first - 1
        header = " | ".join(c.text for c in cells[before:index])
        caption = cells[before - 1].text if before > 0 else header
        rows: list[tuple[_Cell, tuple[_Cell, ...]]] = []
        while index < len(cells) and not _value_like(cells[index].text):
            label = cells[index]
            values: list[_Cell] = []
            probe = index + 1
            while probe < len(cells) and len(values) < len(own) and _value_like(cells[probe].text):
                values.append(cells[probe])
                probe += 1
            if not values:
                break  # a paragraph after the table
            rows.append((label, tuple(values)))
            index = probe
        if rows:
            tables.append(_Table(caption, own, tuple(rows)))
        else:
            index = start + 1
    return tables


def detect(lines: Sequence[Line], *, entity: str | None = None) -> bool:
    """Does the section hold a result table with at least one row?"""
    return bool(_tables(lines, entity))


def _measure(label: str, nation: _Column | None, cells: Sequence[str]) -> str | None:
    if _INDEX.search(label):
        return "index"
    if _COUNT.search(label):
        return "count"
    if _SHARE_OF_MUNICIPALITIES.search(label):
        return "share_of_municipalities"
    if _SHARE.search(label) or any(_SHARE.search(cell) for cell in cells):
        return "share_of_respondents"
    if _MEAN.search(label) or (nation is not None and nation.mean):
        return "mean"
    return None


def parse(
    lines: Sequence[Line],
    *,
    context: PageContext | None = None,
    directions: Mapping[str, str] | None = None,
) -> tuple[tuple[Finding, ...], tuple[Reject, ...]]:
    """Findings of every result table in the section, and the rows kept back."""
    context = context or PageContext()
    findings: list[Finding] = []
    rejects: list[Reject] = []
    for table in _tables(lines, context.municipality):
        entity_years = {c.year for c in table.columns if c.kind == "entity"}
        for label, cells in table.rows:
            row_text = " | ".join([label.text, *(cell.text for cell in cells)])
            if _RANK_ROW.search(label.text) or any(_RANK_ROW.search(c.text) for c in cells):
                rejects.append(Reject("table_rank_row", row_text, table.caption, label.line))
                continue
            if len(cells) < len(table.columns):
                rejects.append(Reject("table_row_incomplete", row_text, table.caption, label.line))
                continue
            texts = [cell.text for cell in cells]
            for column, cell in zip(table.columns, cells, strict=True):
                if column.kind != "entity":
                    continue
                nation = next(
                    (
                        (c, _figure(t))
                        for c, t in zip(table.columns, texts, strict=True)
                        if c.kind == "nation"
                        and (c.year == column.year or (c.year is None and len(entity_years) == 1))
                    ),
                    None,
                )
                national_value = nation[1] if nation else None
                local = _figure(cell.text)
                if local is None and national_value is None:
                    continue
                measure = _measure(label.text, nation[0] if nation else None, texts)
                percent = (
                    national_value
                    if measure in ("share_of_municipalities", "share_of_respondents")
                    and national_value is not None
                    and 0 <= national_value <= 100
                    else None
                )
                comparison = compare(local, national_value)
                entity = context.municipality or column.name
                findings.append(
                    Finding(
                        url=context.url,
                        municipality=entity,
                        area=context.area,
                        page_updated=context.page_updated,
                        page_published=context.page_published,
                        section=table.caption,
                        survey_year=column.year,
                        survey_year_basis="heading" if column.year is not None else "none",
                        position=len(findings) + 1,
                        national_statement=label.text,
                        national_percent=percent,
                        national_values=(percent,) if percent is not None else (),
                        national_comparison=judged(comparison, label.text, directions),
                        local_answer=None,
                        local_status=None,
                        local_value=local,
                        flags=(),
                        entity_kind="municipality",
                        national_measure=measure if national_value is not None else None,
                        national_value=national_value,
                        comparison=comparison,
                        entity=entity,
                    )
                )
    return tuple(findings), tuple(rejects)
