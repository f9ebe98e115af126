"""Change over time: indicators, indicator links, observations and changes, derived from
all findings of a release. Plain functions; `flows.storage` writes what they return.

- indicators: one row per national question, linked across rewordings within an area
  (`parsers.linking`), with ids kept stable from the previous release.
- observations: one row per (municipality, indicator, survey year), deduplicated over the
  snapshots that carried it; disagreeing snapshots keep every value and are flagged.
- changes: what differs between consecutive snapshots of the same page.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flows.errors import UsageError
from flows.schemas import (
    CHANGES,
    INDICATOR_LINKS,
    INDICATORS,
    OBSERVATIONS,
    RESOLVED_YEAR_BASES,
)
from flows.sources import page_key
from parsers.linking import Occurrence, link_statements, normalize_statement
from parsers.years import latest_survey_year

#: Columns compared between snapshots and between observations.
COMPARED = ("national_statement", "national_percent", "local_answer", "local_status", "local_value")
OBSERVED = ("national_percent", "local_status", "local_answer", "local_value")
_NO_YEAR = 9999
#: Derived rows are handed to storage in chunks of this many, as compact Arrow tables, so
#: at most one chunk of Python objects is alive at a time.
CHUNK_ROWS = 20_000
_DIGITS = re.compile(r"\d")


class OverridesError(UsageError, ValueError):
    """An indicator override file that cannot be used, naming the file and entry."""


@dataclass
class Overrides:
    """Indicator links made by hand; they win over the matcher.

    TOML, statements as printed on the pages (they are normalised the same way):

        [[same]]            # these statements are one question
        area = "..."
        statements = ["...", "..."]

        [[different]]       # these statements are never one question
        area = "..."
        statements = ["...", "..."]
    """

    same: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    different: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    sha256: str | None = None


def load_overrides(path: Path | str | None) -> Overrides:
    """The overrides file; none when `path` is None. A named file that does not exist is
    an error: a run must never drop hand-made links silently."""
    if path is None:
        return Overrides()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise OverridesError(f"{path}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise OverridesError(f"{path}: {error}") from error
    overrides = Overrides(sha256=hashlib.sha256(raw).hexdigest())
    for kind in ("same", "different"):
        for index, entry in enumerate(data.get(kind, []), start=1):
            statements = entry.get("statements", [])
            if "area" not in entry or len(statements) < 2:
                raise OverridesError(
                    f"{path}: [[{kind}]] #{index} needs an area and two or more statements"
                )
            normalized = [normalize_statement(s) for s in statements]
            pairs = [(normalized[0], other) for other in normalized[1:]]
            target = overrides.same if kind == "same" else overrides.different
            target.setdefault(entry["area"], []).extend(pairs)
    return overrides


@dataclass(slots=True)
class Row:
    """One finding as the derivations see it: slots, not a dict (100,000 of them at once)."""

    finding_id: str
    snapshot_id: str
    url: str
    captured_at: Any
    page_updated: date | None
    area: str | None
    municipality: str | None
    section: str
    survey_year: int | None
    survey_year_basis: str
    position: int
    national_statement: str
    national_percent: float | None
    local_answer: str | None
    local_status: str | None
    local_value: float | None
    indicator_id: str = ""
    link_method: str = ""
    normalized_statement: str = ""
    seen: date | None = None


class Columns(dict):
    """A table being built, column by column: each appended row is spread into the column
    lists at once, so no per-row dict outlives its append."""

    def __init__(self, schema: pa.Schema) -> None:
        super().__init__((name, []) for name in schema.names)
        self.rows = 0

    def append(self, row: dict[str, Any]) -> None:
        for name, column in self.items():
            column.append(row[name])
        self.rows += 1


def _seen(row: Row) -> date | None:
    """When a snapshot was seen: its capture date, else the date the page printed."""
    captured = row.captured_at
    return captured.date() if captured is not None else row.page_updated


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Nulls first, then by value (None never compared with a value)."""
    return (value is not None, value if value is not None else 0)


def link_indicators(
    rows: list[Row], previous_links: pd.DataFrame | None, overrides: Overrides
) -> Columns:
    """One link per finding: its indicator and how it was linked."""
    normalized = _normalizer()
    normalized_of = {row.national_statement: normalized(row.national_statement) for row in rows}
    previous: dict[tuple[str, str], str] = {}
    if previous_links is not None and not previous_links.empty:
        previous = {
            (a, n): i
            for a, n, i in previous_links[["area", "normalized_statement", "indicator_id"]]
            .drop_duplicates()
            .itertuples(index=False)
        }
    by_area: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_area[row.area or ""].append(row)

    links_out = Columns(INDICATOR_LINKS)
    taken: set[str] = set()
    for area in sorted(by_area):
        members: dict[str, list[Row]] = defaultdict(list)
        for row in by_area[area]:
            members[normalized_of[row.national_statement]].append(row)
        occurrences = []
        for normalized in sorted(members):
            years = [r.survey_year for r in members[normalized] if r.survey_year is not None]
            places = frozenset((r.snapshot_id, r.section) for r in members[normalized])
            occurrences.append(Occurrence(normalized, min(years, default=_NO_YEAR), places))
        links = link_statements(
            occurrences,
            same=overrides.same.get(area, ()),
            different=overrides.different.get(area, ()),
        )
        # Stable ids: a group keeps the id its statements had in the previous release.
        texts_of: dict[int, list[str]] = defaultdict(list)
        founder_of: dict[int, str] = {}
        for link in links.values():
            texts_of[link.group].append(link.normalized)
            if link.linked_to == link.normalized:
                founder_of[link.group] = link.normalized
        id_of_group: dict[int, str] = {}
        for group in sorted(texts_of):
            earlier = Counter(previous[(area, n)] for n in texts_of[group] if (area, n) in previous)
            reused = next((i for i, _ in earlier.most_common() if i not in taken), None)
            founder = founder_of.get(group, min(texts_of[group]))
            new_id = "I" + hashlib.sha256(f"{area}\x1f{founder}".encode()).hexdigest()[:12]
            id_of_group[group] = reused or new_id
            taken.add(id_of_group[group])
        for normalized, group_rows in members.items():
            link = links[normalized]
            for row in group_rows:
                links_out.append(
                    {
                        "finding_id": row.finding_id,
                        "indicator_id": id_of_group[link.group],
                        "area": area,
                        "normalized_statement": normalized,
                        "link_method": link.method,
                        "link_score": link.score,
                        "linked_to": link.linked_to,
                        # resolved over the release once every row is linked (`derive`)
                        "resolved_survey_year": None,
                        "resolved_survey_year_basis": "none",
                    }
                )
    return links_out


#: Bases of a year the page itself dates: what an undated finding may be matched to.
DATED_BASES = frozenset({"heading", "stated_year", "page_title"})
_BASIS_RANK = {basis: rank for rank, basis in enumerate(RESOLVED_YEAR_BASES)}


def resolve_survey_years(rows: list[Row]) -> int:
    """Give findings whose page could not tell their year the year of a dated section
    elsewhere in the archive with the same question, wording and national figure.

    The 2020 version of a page keeps "2019 års resultat: 22 procent ..."; an earlier
    capture showed the same statement, word for word and figure for figure, under an
    undated "Årets resultat". Only an unambiguous match counts (one year for that
    wording and figure), and never one from the same snapshot: a page does not print
    the same question twice for one year. Returns how many years were resolved.
    """
    dated: dict[tuple[str, str, float], dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in rows:
        if (
            row.survey_year is not None
            and row.survey_year_basis in DATED_BASES
            and row.national_percent is not None
        ):
            key = (row.indicator_id, row.normalized_statement, row.national_percent)
            dated[key][row.survey_year].add(row.snapshot_id)
    resolved = _same_text_on_later_captures(rows)
    for row in rows:
        if row.survey_year is not None or row.national_percent is None:
            continue
        years = dated.get((row.indicator_id, row.normalized_statement, row.national_percent))
        if not years:
            continue
        candidates = [year for year, snapshots in years.items() if snapshots - {row.snapshot_id}]
        if len(years) == 1 and len(candidates) == 1:
            row.survey_year, row.survey_year_basis = candidates[0], "matched_national_figure"
            resolved += 1
    return resolved


#: Bases read from dates (page or capture) or a comparison: weaker than what the text says.
DATE_BASES = frozenset({"page_updated", "page_published", "captured_at", "comparison_year"})


def _upper_bound(row: Row) -> int | None:
    """The latest survey year this snapshot can show, by its capture and update dates."""
    days = (row.captured_at, row.page_updated)
    return min((latest_survey_year(day) for day in days if day is not None), default=None)


def _same_text_on_later_captures(rows: list[Row]) -> int:
    """One bullet printed unchanged on several captures of a page is one survey's result.

    A page captured in September 2020 and again, unchanged, in September 2021 (no
    update date, or an update that changed something else) is dated 2020 and 2021 by
    the calendar; the statement was already there in 2020, so 2021 is impossible. Years
    read from dates that exceed what the earliest capture of the same text allows take
    the earliest capture's year; with no such year they are a conflict (null). Findings
    the page could not date are left to the match by figure. Returns how many changed.
    """
    groups: dict[tuple[str, str, float | None], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(page_key(row.url), row.national_statement, row.national_percent)].append(row)
    changed = 0
    for group in groups.values():
        if len({row.snapshot_id for row in group}) < 2:
            continue
        bounds = [b for b in map(_upper_bound, group) if b is not None]
        if not bounds:
            continue
        bound = min(bounds)
        ordered = sorted(group, key=lambda r: (_sort_key(r.seen), r.snapshot_id))
        earliest = next(
            (
                r.survey_year
                for r in ordered
                if r.survey_year is not None and r.survey_year <= bound
            ),
            None,
        )
        for row in group:
            if (
                row.survey_year is not None
                and row.survey_year_basis in DATE_BASES
                and row.survey_year > bound
            ):
                if earliest is not None:
                    row.survey_year, row.survey_year_basis = earliest, "matched_national_figure"
                else:
                    row.survey_year, row.survey_year_basis = None, "conflict"
                changed += 1
    return changed


def national_figures_by_year(rows: list[Row]) -> dict[tuple[str, int], list[float]]:
    """Every distinct national percent of each (indicator, survey year), oldest first."""
    out: dict[tuple[str, int], list[float]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (_sort_key(r.seen), r.snapshot_id, r.position)):
        if row.survey_year is None or row.national_percent is None:
            continue
        values = out[(row.indicator_id, row.survey_year)]
        if row.national_percent not in values:
            values.append(row.national_percent)
    return out


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value is not None and value not in out:
            out.append(value)
    return out


def build_observations(rows: list[Row]) -> Iterator[Columns]:
    """One row per (municipality, indicator, survey year), over every snapshot."""
    national = national_figures_by_year(rows)
    groups: dict[tuple[Any, str, Any], list[Row]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (_sort_key(r.seen), r.snapshot_id, r.position)):
        groups[(row.municipality, row.indicator_id, row.survey_year)].append(row)
    observations = Columns(OBSERVATIONS)
    # Ordered by indicator first: an incremental release replaces whole indicators, and
    # their rows then sit together in a few files (fewer files rewritten by the delete).
    for municipality, indicator_id, survey_year in sorted(
        groups, key=lambda k: (k[1], _sort_key(k[0]), _sort_key(k[2]))
    ):
        if observations.rows >= CHUNK_ROWS:
            yield observations
            observations = Columns(OBSERVATIONS)
        group = groups.pop((municipality, indicator_id, survey_year))
        latest = group[-1]
        if len(group) == 1:  # most observations were seen once: nothing to compare
            values = {c: [v] if (v := getattr(latest, c)) is not None else [] for c in OBSERVED}
        else:
            values = {c: _distinct([getattr(r, c) for r in group]) for c in OBSERVED}
        conflicts = [column for column in OBSERVED if len(values[column]) > 1]
        seen = [r.seen for r in group if r.seen is not None]
        observations.append(
            {
                "municipality": municipality,
                "indicator_id": indicator_id,
                "area": latest.area or "",
                "survey_year": survey_year,
                "survey_year_basis": min(
                    (r.survey_year_basis for r in group), key=lambda b: _BASIS_RANK.get(b, 99)
                ),
                **{column: getattr(latest, column) for column in OBSERVED},
                "first_seen": min(seen, default=None),
                "last_seen": max(seen, default=None),
                "n_snapshots": len({r.snapshot_id for r in group}),
                "snapshot_ids": list(dict.fromkeys(r.snapshot_id for r in group)),
                "finding_ids": [r.finding_id for r in group],
                "conflict": bool(conflicts),
                "conflict_columns": conflicts,
                "national_conflict": len(national.get((indicator_id, survey_year), ())) > 1,
                "national_percent_all_values": national.get((indicator_id, survey_year), []),
                **{f"{column}_values": values[column] for column in OBSERVED},
            }
        )
    yield observations


def build_indicators(rows: list[Row], n_observations: Counter) -> Columns:
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (_sort_key(r.survey_year), r.snapshot_id, r.position)):
        groups[row.indicator_id].append(row)
    indicators = Columns(INDICATORS)
    for indicator_id in sorted(groups):
        group = groups[indicator_id]
        years = [r.survey_year for r in group if r.survey_year is not None]
        founder = next((r for r in group if r.link_method == "exact"), group[0])
        indicators.append(
            {
                "indicator_id": indicator_id,
                "area": group[0].area or "",
                "canonical_statement": group[-1].national_statement,
                "normalized_statement": founder.normalized_statement,
                "first_survey_year": min(years, default=None),
                "last_survey_year": max(years, default=None),
                "n_observations": n_observations[indicator_id],
                "n_wordings": len({r.national_statement for r in group}),
                "n_findings": len(group),
            }
        )
    return indicators


def build_changes(rows: list[Row]) -> Iterator[Columns]:
    """Added, removed and edited findings between consecutive snapshots of each page.

    A finding is followed across snapshots by (indicator, survey year); the same pair
    twice on one page is told apart by its order.
    """
    by_snapshot: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_snapshot[row.snapshot_id].append(row)
    pages: dict[str, list[Row]] = defaultdict(list)
    for snapshot_rows in by_snapshot.values():
        first = snapshot_rows[0]
        pages[page_key(first.url)].append(first)
    changes = Columns(CHANGES)
    for page in sorted(pages):
        if changes.rows >= CHUNK_ROWS:
            yield changes
            changes = Columns(CHANGES)
        ordered = sorted(pages[page], key=lambda r: (_sort_key(r.seen), r.snapshot_id))
        for before, after in zip(ordered, ordered[1:], strict=False):
            _diff(
                changes,
                before,
                after,
                by_snapshot[before.snapshot_id],
                by_snapshot[after.snapshot_id],
            )
    yield changes


def _keyed(rows: list[Row]) -> dict[tuple[str, Any, int], Row]:
    counter: Counter = Counter()
    out = {}
    for row in sorted(rows, key=lambda r: r.position):
        base = (row.indicator_id, row.survey_year)
        out[(*base, counter[base])] = row
        counter[base] += 1
    return out


def _diff(changes: Columns, before: Row, after: Row, old: list[Row], new: list[Row]) -> None:
    old_rows, new_rows = _keyed(old), _keyed(new)
    common = {
        "url": after.url,
        "area": after.area,
        "municipality": after.municipality,
        "from_snapshot_id": before.snapshot_id,
        "to_snapshot_id": after.snapshot_id,
        "from_seen": before.seen,
        "to_seen": after.seen,
    }
    for key in list(old_rows) + [k for k in new_rows if k not in old_rows]:
        was, now = old_rows.get(key), new_rows.get(key)
        if was is not None and now is not None:
            changed = [c for c in COMPARED if getattr(was, c) != getattr(now, c)]
            if not changed:
                continue
            kind = "edited"
        else:
            changed, kind = list(COMPARED), ("removed" if now is None else "added")
        changes.append(
            {
                **common,
                "change_kind": kind,
                "indicator_id": key[0],
                "survey_year": key[1],
                "finding_id_before": was.finding_id if was else None,
                "finding_id_after": now.finding_id if now else None,
                "columns_changed": changed,
                "before": json.dumps({c: getattr(was, c) for c in changed}, ensure_ascii=False)
                if was
                else None,
                "after": json.dumps({c: getattr(now, c) for c in changed}, ensure_ascii=False)
                if now
                else None,
                "local_status_before": was.local_status if was else None,
                "local_status_after": now.local_status if now else None,
                "local_status_flip": kind == "edited" and was.local_status != now.local_status,
                "national_percent_before": was.national_percent if was else None,
                "national_percent_after": now.national_percent if now else None,
                "national_changed": kind == "edited"
                and was.national_percent != now.national_percent,
            }
        )


#: The findings columns the derivations read: Row's fields that come from `findings`.
COLUMNS_USED = tuple(f.name for f in fields(Row) if f.default is MISSING)
#: The `indicator_links` columns an incremental release reads from the previous release.
LINK_COLUMNS = (
    "finding_id",
    "indicator_id",
    "area",
    "normalized_statement",
    "link_method",
    "link_score",
    "linked_to",
    "resolved_survey_year",
    "resolved_survey_year_basis",
)


def _rows(findings: pa.Table) -> list[Row]:
    columns = findings.select(list(COLUMNS_USED)).to_pydict()
    return [Row(*values) for values in zip(*(columns[c] for c in COLUMNS_USED), strict=True)]


def derive(
    findings: pa.Table, previous_links: pd.DataFrame | None, overrides: Overrides
) -> Iterator[tuple[str, Columns]]:
    """Every derived table of a release, from all of its findings: (table, chunk of rows)
    in table order, a table's chunks in a row, so the caller can turn each chunk into Arrow
    and drop it before the next is built (plain Python over slotted rows: pandas group-by
    loops cost ~50x more at 100,000 findings)."""
    rows = _rows(findings)
    links = link_indicators(rows, previous_links, overrides)
    position_of = {finding_id: i for i, finding_id in enumerate(links["finding_id"])}
    for row in rows:
        at = position_of[row.finding_id]
        row.indicator_id = links["indicator_id"][at]
        row.link_method = links["link_method"][at]
        row.normalized_statement = links["normalized_statement"][at]
        row.seen = _seen(row)
    resolve_survey_years(rows)
    for row in rows:
        at = position_of[row.finding_id]
        links["resolved_survey_year"][at] = row.survey_year
        links["resolved_survey_year_basis"][at] = row.survey_year_basis
    del position_of
    yield "indicator_links", links
    del links
    yield from _derive_linked(rows, pages=None)


def _derive_linked(rows: list[Row], pages: list[Row] | None) -> Iterator[tuple[str, Columns]]:
    """Observations, indicators and changes of linked rows whose years are resolved;
    changes from `pages` (every row of the pages to diff) when given, else from `rows`."""
    n_observations: Counter = Counter()
    for chunk in build_observations(rows):
        n_observations.update(chunk["indicator_id"])
        yield "observations", chunk
    yield "indicators", build_indicators(rows, n_observations)
    for chunk in build_changes(rows if pages is None else pages):
        yield "changes", chunk


# --- incremental releases ---------------------------------------------------------------------


class DerivationInputs:
    """What a derivation reads, at the versions of the release being written. Implemented
    by `flows.storage.DerivationReader`; an interface here so this module does no IO."""

    def all_findings(self, columns: list[str]) -> pa.Table:
        raise NotImplementedError

    def new_findings(self, columns: list[str]) -> pa.Table:  # findings this run added
        raise NotImplementedError

    def findings(self, columns: list[str], finding_ids: set[str], urls: set[str]) -> pa.Table:
        """Findings whose id is in `finding_ids` or whose url is in `urls`."""
        raise NotImplementedError

    def finding_urls(self) -> list[str]:  # the distinct urls of all findings
        raise NotImplementedError

    def previous_links(self, columns: list[str]) -> pa.Table | None:  # None: no such table
        raise NotImplementedError


@dataclass
class Derivation:
    """How a release updates the derived tables.

    `mode` "full": `chunks` replace every derived table. "incremental": for each table in
    `replace`, the rows whose column is one of the values are deleted, then `chunks` are
    appended; tables not named keep their rows.
    """

    mode: str
    reason: str
    chunks: Iterator[tuple[str, Columns]]
    replace: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    seconds: float = 0.0  # deriving and writing, filled in by the caller


class _Fallback(Exception):
    """The new findings change how statements link: only a full derivation is exact."""


def plan_derivation(
    inputs: DerivationInputs, overrides: Overrides, full_reason: str | None = None
) -> Derivation:
    """The derived tables of a release: incremental when the new findings leave the
    indicators' linking as it was, else (or when `full_reason` says so) rebuilt in full.

    Why incremental is exact. Everything but `changes` is a function of one indicator's
    findings: its observations, its national figures per year, its row in `indicators`,
    and every finding's resolved survey year (matched by indicator and figure, or by the
    same text on one page, which is one statement of one indicator). `changes` is a
    function of one page's findings. So a release recomputes the indicators the new
    findings link to and the pages they come from, and keeps every other row.

    The linking itself is kept only if the full matcher would link every statement as
    before: every new statement's normalised text is already linked in its area, none
    is seen with an earlier year than before (the matcher takes statements oldest
    first), and no new section prints two statements of one indicator (two bullets of
    one block are two questions). Otherwise the release re-links in full; ids stay
    stable either way (`link_indicators` reuses the previous release's).
    """
    if full_reason is not None:
        return _full(inputs, overrides, full_reason)
    previous = inputs.previous_links(list(LINK_COLUMNS))
    if previous is None:
        return _full(inputs, overrides, "no derived tables yet")
    try:
        return _incremental(inputs, previous)
    except _Fallback as why:
        return _full(inputs, overrides, str(why), previous)


def _full(
    inputs: DerivationInputs,
    overrides: Overrides,
    reason: str,
    previous: pa.Table | None = None,
) -> Derivation:
    if previous is None:
        previous = inputs.previous_links(["area", "normalized_statement", "indicator_id"])
    previous_links = None
    if previous is not None:
        previous_links = (
            previous.select(["area", "normalized_statement", "indicator_id"])
            .group_by(["area", "normalized_statement", "indicator_id"])
            .aggregate([])
            .to_pandas()
        )
    return Derivation("full", reason, _full_chunks(inputs, previous_links, overrides))


def _full_chunks(
    inputs: DerivationInputs, previous_links: pd.DataFrame | None, overrides: Overrides
) -> Iterator[tuple[str, Columns]]:
    yield from derive(inputs.all_findings(list(COLUMNS_USED)), previous_links, overrides)


def _normalizer() -> Callable[[str], str]:
    """`normalize_statement` with a cache for one derivation."""
    by_shape: dict[str, str] = {}

    def normalized(statement: str) -> str:
        # Normalising removes every figure and year, so statements whose digits differ but
        # not their number ("63 procent" one year, "71 procent" the next) share one result.
        shape = _DIGITS.sub("0", statement)
        if shape not in by_shape:
            by_shape[shape] = normalize_statement(statement)
        return by_shape[shape]

    return normalized


def _incremental(inputs: DerivationInputs, previous: pa.Table) -> Derivation:
    # No overrides here: changed overrides always rebuild in full (`full_derivation_reason`).
    new_rows = _rows(inputs.new_findings(list(COLUMNS_USED)))
    if not new_rows:
        return Derivation("incremental", "no new findings", iter(()))
    normalized = _normalizer()
    # The previous release's linking, one row per (area, normalised statement).
    linking = (
        previous.select(list(LINK_COLUMNS[1:7]))
        .group_by(list(LINK_COLUMNS[1:7]))
        .aggregate([])
        .to_pylist()
    )
    link_of = {(link["area"], link["normalized_statement"]): link for link in linking}
    for row in new_rows:
        row.normalized_statement = normalized(row.national_statement)
        link = link_of.get((row.area or "", row.normalized_statement))
        if link is None:
            raise _Fallback(f"a new wording in {row.area or 'an unnamed area'}")
        row.indicator_id, row.link_method = link["indicator_id"], link["link_method"]
        row.seen = _seen(row)
    in_section: dict[tuple[str, str, str], str] = {}
    for row in new_rows:
        key = (row.snapshot_id, row.section, row.indicator_id)
        if in_section.setdefault(key, row.normalized_statement) != row.normalized_statement:
            raise _Fallback(f"two wordings of one question in one section of {row.url}")

    touched = {row.indicator_id for row in new_rows}
    new_ids = {row.finding_id for row in new_rows}
    touched_ids = pa.array(sorted(touched), pa.string())
    old_links = previous.filter(pc.is_in(previous["indicator_id"], touched_ids))
    page_keys = {page_key(row.url) for row in new_rows}
    urls = {url for url in inputs.finding_urls() if page_key(url) in page_keys}
    old_ids = set(old_links["finding_id"].to_pylist())
    scope = _rows(inputs.findings(list(COLUMNS_USED), old_ids, urls))
    link_rows = {link["finding_id"]: link for link in _links_of(previous, scope)}
    new_by_id = {row.finding_id: row for row in new_rows}
    in_scope: list[Row] = []  # rows of the touched indicators
    first_year: dict[tuple[str, str], int] = {}
    for row in scope:
        row.seen = _seen(row)
        if row.finding_id in new_by_id:
            fresh = new_by_id[row.finding_id]
            row.indicator_id, row.link_method = fresh.indicator_id, fresh.link_method
            row.normalized_statement = fresh.normalized_statement
        else:
            link = link_rows[row.finding_id]
            if _take_link(row, link, touched):
                continue  # not recomputed: it keeps the year the last release resolved
            key = (row.area or "", row.normalized_statement)
            year = row.survey_year if row.survey_year is not None else _NO_YEAR
            first_year[key] = min(first_year.get(key, _NO_YEAR), year)
        in_scope.append(row)
    for row in new_rows:
        key = (row.area or "", row.normalized_statement)
        year = row.survey_year if row.survey_year is not None else _NO_YEAR
        if key in first_year and year < first_year[key]:
            raise _Fallback(f"an earlier year for a known wording in {row.area or 'an area'}")

    resolve_survey_years(in_scope)
    # A finding whose resolved year moved changes its page's changes too.
    moved = {
        page_key(row.url)
        for row in in_scope
        if row.finding_id not in new_ids
        and row.survey_year != link_rows[row.finding_id]["resolved_survey_year"]
    }
    if moved - page_keys:
        extra_urls = {url for url in inputs.finding_urls() if page_key(url) in moved - page_keys}
        known = {row.finding_id for row in scope}
        extra = [
            row
            for row in _rows(inputs.findings(list(COLUMNS_USED), set(), extra_urls))
            if row.finding_id not in known
        ]
        link_rows |= {link["finding_id"]: link for link in _links_of(previous, extra)}
        for row in extra:
            # Not of a recomputed indicator (those rows are all in scope already).
            _take_link(row, link_rows[row.finding_id], touched)
            row.seen = _seen(row)
            scope.append(row)
        page_keys |= moved
    page_rows = [row for row in scope if page_key(row.url) in page_keys]
    snapshots = sorted({row.snapshot_id for row in page_rows})
    indicators = sorted(touched)

    def chunks() -> Iterator[tuple[str, Columns]]:
        links = Columns(INDICATOR_LINKS)
        for row in in_scope:
            link = link_of[(row.area or "", row.normalized_statement)]
            links.append(
                {
                    "finding_id": row.finding_id,
                    "indicator_id": row.indicator_id,
                    "area": row.area or "",
                    "normalized_statement": row.normalized_statement,
                    "link_method": link["link_method"],
                    "link_score": link["link_score"],
                    "linked_to": link["linked_to"],
                    "resolved_survey_year": row.survey_year,
                    "resolved_survey_year_basis": row.survey_year_basis,
                }
            )
        yield "indicator_links", links
        yield from _derive_linked(in_scope, page_rows)

    return Derivation(
        "incremental",
        f"{len(new_rows)} new findings",
        chunks(),
        replace={
            "indicator_links": ("indicator_id", indicators),
            "observations": ("indicator_id", indicators),
            "indicators": ("indicator_id", indicators),
            "changes": ("to_snapshot_id", snapshots),
        },
    )


def _take_link(row: Row, link: dict[str, Any], recomputed: set[str]) -> bool:
    """Give a row its link from the previous release; for a row of an indicator not in
    `recomputed`, also the survey year that release resolved (returns True then)."""
    row.indicator_id, row.link_method = link["indicator_id"], link["link_method"]
    row.normalized_statement = link["normalized_statement"]
    if row.indicator_id in recomputed:
        return False
    row.survey_year = link["resolved_survey_year"]
    row.survey_year_basis = link["resolved_survey_year_basis"]
    return True


def _links_of(previous: pa.Table, rows: list[Row]) -> list[dict[str, Any]]:
    """The previous release's link rows of these findings (those it has)."""
    ids = pa.array(sorted({row.finding_id for row in rows}), pa.string())
    return previous.filter(pc.is_in(previous["finding_id"], ids)).to_pylist()
