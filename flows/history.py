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
import math
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flows.sources import page_key
from parsers.linking import Occurrence, link_statements, normalize_statement

#: Columns compared between snapshots and between observations.
COMPARED = ("national_statement", "national_percent", "local_answer", "local_status", "local_value")
OBSERVED = ("national_percent", "local_status", "local_answer", "local_value")
_NO_YEAR = 9999


class OverridesError(ValueError):
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
    if path is None or not Path(path).exists():
        return Overrides()
    path = Path(path)
    raw = path.read_bytes()
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


def _seen(row: Any) -> date | None:
    """When a snapshot was seen: its capture date, else the date the page printed."""
    captured = row.captured_at
    if captured is not None and not pd.isna(captured):
        return captured.date()
    updated = row.page_updated
    return None if updated is None or pd.isna(updated) else updated


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA:
        return None
    return value


def link_indicators(
    findings: pd.DataFrame, previous_links: pd.DataFrame | None, overrides: Overrides
) -> pd.DataFrame:
    """One row per finding: its indicator and how it was linked."""
    normalized_of = {s: normalize_statement(s) for s in findings["national_statement"].unique()}
    findings = findings.assign(normalized=findings["national_statement"].map(normalized_of))
    previous: dict[tuple[str, str], str] = {}
    if previous_links is not None and not previous_links.empty:
        pairs = previous_links[["area", "normalized_statement", "indicator_id"]].drop_duplicates()
        previous = {(a, n): i for a, n, i in pairs.itertuples(index=False)}

    rows = []
    taken: set[str] = set()
    for area, group in findings.groupby("area", sort=True, dropna=False):
        area = "" if pd.isna(area) else area
        occurrences = []
        for normalized, members in group.groupby("normalized", sort=True):
            years = members["survey_year"].dropna()
            places = frozenset(zip(members["snapshot_id"], members["section"], strict=True))
            first_year = int(years.min()) if len(years) else _NO_YEAR
            occurrences.append(Occurrence(normalized, first_year, places))
        links = link_statements(
            occurrences,
            same=overrides.same.get(area, ()),
            different=overrides.different.get(area, ()),
        )
        # Stable ids: a group keeps the id its statements had in the previous release.
        members_of: dict[int, list[str]] = defaultdict(list)
        for link in links.values():
            members_of[link.group].append(link.normalized)
        id_of_group: dict[int, str] = {}
        for group_index in sorted(members_of):
            earlier = Counter(
                previous[(area, n)] for n in members_of[group_index] if (area, n) in previous
            )
            reused = next((i for i, _ in earlier.most_common() if i not in taken), None)
            founder = next(
                link.normalized
                for link in links.values()
                if link.group == group_index and link.linked_to == link.normalized
            )
            new_id = "I" + hashlib.sha256(f"{area}\x1f{founder}".encode()).hexdigest()[:12]
            id_of_group[group_index] = reused or new_id
            taken.add(id_of_group[group_index])
        for finding_id, normalized in zip(group["finding_id"], group["normalized"], strict=True):
            link = links[normalized]
            rows.append(
                {
                    "finding_id": finding_id,
                    "indicator_id": id_of_group[link.group],
                    "area": area,
                    "normalized_statement": normalized,
                    "link_method": link.method,
                    "link_score": link.score,
                    "linked_to": link.linked_to,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "finding_id",
            "indicator_id",
            "area",
            "normalized_statement",
            "link_method",
            "link_score",
            "linked_to",
        ],
    )


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        value = _clean(value)
        if value is not None and value not in out:
            out.append(value)
    return out


def build_observations(findings: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (municipality, indicator, survey year), over every snapshot."""
    findings = findings.assign(seen=[_seen(row) for row in findings.itertuples()])
    rows = []
    keys = ["municipality", "indicator_id", "survey_year"]
    ordered = findings.sort_values(["seen", "snapshot_id", "position"], na_position="first")
    for (municipality, indicator_id, survey_year), group in ordered.groupby(
        keys, sort=True, dropna=False
    ):
        latest = group.iloc[-1]
        values = {column: _distinct(group[column].tolist()) for column in OBSERVED}
        conflicts = [column for column in OBSERVED if len(values[column]) > 1]
        seen = [d for d in group["seen"] if d is not None and not pd.isna(d)]
        rows.append(
            {
                "municipality": _clean(municipality),
                "indicator_id": indicator_id,
                "area": latest["area"] if not pd.isna(latest["area"]) else "",
                "survey_year": _clean(survey_year),
                **{column: _clean(latest[column]) for column in OBSERVED},
                "first_seen": min(seen) if seen else None,
                "last_seen": max(seen) if seen else None,
                "n_snapshots": group["snapshot_id"].nunique(),
                "snapshot_ids": list(dict.fromkeys(group["snapshot_id"])),
                "finding_ids": list(group["finding_id"]),
                "conflict": bool(conflicts),
                "conflict_columns": conflicts,
                **{f"{column}_values": values[column] for column in OBSERVED},
            }
        )
    return rows


def build_indicators(
    findings: pd.DataFrame, observations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    n_observations = Counter(row["indicator_id"] for row in observations)
    rows = []
    ordered = findings.sort_values(["survey_year", "snapshot_id", "position"], na_position="first")
    for indicator_id, group in ordered.groupby("indicator_id", sort=True):
        years = group["survey_year"].dropna()
        founder = group[group["link_method"] == "exact"]
        rows.append(
            {
                "indicator_id": indicator_id,
                "area": group["area"].iloc[0],
                "canonical_statement": group["national_statement"].iloc[-1],
                "normalized_statement": (founder if len(founder) else group)[
                    "normalized_statement"
                ].iloc[0],
                "first_survey_year": int(years.min()) if len(years) else None,
                "last_survey_year": int(years.max()) if len(years) else None,
                "n_observations": n_observations[indicator_id],
                "n_wordings": group["national_statement"].nunique(),
                "n_findings": len(group),
            }
        )
    return rows


def _values(row: Any, columns: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {column: _clean(getattr(row, column)) for column in columns}


def build_changes(findings: pd.DataFrame) -> list[dict[str, Any]]:
    """Added, removed and edited findings between consecutive snapshots of each page.

    A finding is followed across snapshots by (indicator, survey year); the same pair
    twice on one page is told apart by its order.
    """
    findings = findings.assign(
        seen=[_seen(row) for row in findings.itertuples()],
        page=findings["url"].map(page_key),
    )
    snapshots = (
        findings[["page", "snapshot_id", "seen", "url", "area", "municipality"]]
        .drop_duplicates("snapshot_id")
        .sort_values(["page", "seen", "snapshot_id"], na_position="first")
    )
    by_snapshot = {key: group for key, group in findings.groupby("snapshot_id", sort=False)}
    rows: list[dict[str, Any]] = []
    for _, page_snapshots in snapshots.groupby("page", sort=True):
        ordered = list(page_snapshots.itertuples(index=False))
        for before, after in zip(ordered, ordered[1:], strict=False):
            rows.extend(
                _diff(
                    before, after, by_snapshot[before.snapshot_id], by_snapshot[after.snapshot_id]
                )
            )
    return rows


def _keyed(group: pd.DataFrame) -> dict[tuple[str, Any, int], Any]:
    counter: Counter = Counter()
    out = {}
    for row in group.sort_values("position").itertuples(index=False):
        base = (row.indicator_id, _clean(row.survey_year))
        out[(*base, counter[base])] = row
        counter[base] += 1
    return out


def _diff(before: Any, after: Any, old: pd.DataFrame, new: pd.DataFrame) -> list[dict]:
    old_rows, new_rows = _keyed(old), _keyed(new)
    common = {
        "url": after.url,
        "area": _clean(after.area),
        "municipality": _clean(after.municipality),
        "from_snapshot_id": before.snapshot_id,
        "to_snapshot_id": after.snapshot_id,
        "from_seen": _clean(before.seen),
        "to_seen": _clean(after.seen),
    }
    rows = []
    for key in list(old_rows) + [k for k in new_rows if k not in old_rows]:
        was, now = old_rows.get(key), new_rows.get(key)
        was_values = _values(was, COMPARED) if was is not None else None
        now_values = _values(now, COMPARED) if now is not None else None
        if was is not None and now is not None:
            changed = [c for c in COMPARED if was_values[c] != now_values[c]]
            if not changed:
                continue
            kind = "edited"
        else:
            changed, kind = list(COMPARED), ("removed" if now is None else "added")
        status_before = was_values["local_status"] if was_values else None
        status_after = now_values["local_status"] if now_values else None
        percent_before = was_values["national_percent"] if was_values else None
        percent_after = now_values["national_percent"] if now_values else None
        rows.append(
            {
                **common,
                "change_kind": kind,
                "indicator_id": key[0],
                "survey_year": key[1],
                "finding_id_before": was.finding_id if was is not None else None,
                "finding_id_after": now.finding_id if now is not None else None,
                "columns_changed": changed,
                "before": json.dumps({c: was_values[c] for c in changed}, ensure_ascii=False)
                if was_values
                else None,
                "after": json.dumps({c: now_values[c] for c in changed}, ensure_ascii=False)
                if now_values
                else None,
                "local_status_before": status_before,
                "local_status_after": status_after,
                "local_status_flip": kind == "edited" and status_before != status_after,
                "national_percent_before": percent_before,
                "national_percent_after": percent_after,
                "national_changed": kind == "edited" and percent_before != percent_after,
            }
        )
    return rows


def derive(
    findings: pa.Table, previous_links: pd.DataFrame | None, overrides: Overrides
) -> dict[str, list[dict[str, Any]] | pd.DataFrame]:
    """Every derived table of a release, from all of its findings."""
    frame = findings.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get)
    frame["survey_year"] = (
        frame["survey_year"].astype(object).where(frame["survey_year"].notna(), None)
    )
    links = link_indicators(frame, previous_links, overrides)
    linked = frame.merge(links.drop(columns=["area"]), on="finding_id", how="left")
    observations = build_observations(linked)
    return {
        "indicator_links": links,
        "observations": observations,
        "indicators": build_indicators(linked, observations),
        "changes": build_changes(linked),
    }
