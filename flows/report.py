"""Readable reports over published releases: `oj changes` and `oj diff`."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flows import storage
from flows.errors import plural
from flows.schemas import TABLES, VERSIONED_TABLES
from parsers import NATIONAL_FLAGS
from parsers.linking import question_label

#: The key that identifies a row of each table across releases.
ROW_KEYS: dict[str, list[str]] = {
    "pages": ["snapshot_id"],
    "findings": ["finding_id"],
    "rejects": ["snapshot_id", "reason", "section", "line", "text"],
    "indicators": ["indicator_id"],
    "indicator_links": ["finding_id"],
    "observations": ["entity_kind", "entity", "indicator_id", "survey_year"],
    "changes": [
        "from_snapshot_id",
        "to_snapshot_id",
        "change_kind",
        "indicator_id",
        "survey_year",
        "finding_id_before",
        "finding_id_after",
    ],
    "runs": ["release"],
}


def format_value(value: Any) -> str:
    """A cell as text: a dash for a null, floats without trailing zeros."""
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def changes_report(
    datasets_dir: Path | str,
    *,
    release: int | None = None,
    since: date | None = None,
    area: str | None = None,
    municipality: str | None = None,
    width: int = 100,
) -> str:
    """What changed between consecutive snapshots of each page, newest first."""
    changes = storage.load_table("changes", release, datasets_dir)
    indicators = storage.load_table("indicators", release, datasets_dir)
    statement_of = dict(
        zip(indicators["indicator_id"], indicators["canonical_statement"], strict=True)
    )
    if since is not None:
        changes = changes[changes["to_seen"].map(lambda d: d is not None and d >= since)]
    if area:
        changes = changes[changes["area"].fillna("").str.contains(area, case=False, regex=False)]
    if municipality:
        changes = changes[changes["municipality"].fillna("").str.lower() == municipality.lower()]
    if changes.empty:
        return "no changes match\n"
    # Each change names its own finding's wording (`change_statement`).
    wanted = set(changes["finding_id_after"].dropna()) | set(changes["finding_id_before"].dropna())
    findings = storage.load_arrow(
        "findings", release, datasets_dir, ["finding_id", "national_statement"]
    )
    statement_of_finding = {
        finding_id: statement
        for finding_id, statement in zip(*findings.to_pydict().values(), strict=True)
        if finding_id in wanted
    }
    lines: list[str] = []
    groups = changes.groupby(
        ["to_seen", "url", "from_snapshot_id", "to_snapshot_id"], sort=True, dropna=False
    )
    for (to_seen, url, _, _), group in sorted(
        groups, key=lambda item: str(item[0][0]), reverse=True
    ):
        first = group.iloc[0]
        place = f"{format_value(first['area'])} · {format_value(first['municipality'])}"
        lines.append(
            f"{format_value(to_seen)}  {place}  (since {format_value(first['from_seen'])})\n  {url}"
        )
        for row in group.itertuples():
            lines.extend(_change_lines(row, statement_of_finding, statement_of, width))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def change_values(row: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The before and after values of a `changes` row ({} for the side it lacks)."""
    before = json.loads(row.before) if isinstance(row.before, str) else {}
    after = json.loads(row.after) if isinstance(row.after, str) else {}
    return before, after


def change_statement(
    row: Any, statement_of_finding: dict[str, str], statement_of: dict[str, str]
) -> str:
    """The statement a change is about, as its own finding printed it: a removed
    finding's text is not the canonical (latest) wording of its question ("Majoriteten
    ..." was removed while the question now reads "83 procent ...")."""
    before, after = change_values(row)
    removed = row.change_kind == "removed"
    finding_id = row.finding_id_before if removed else row.finding_id_after
    return (
        (before if removed else after).get("national_statement")
        or statement_of_finding.get(finding_id)
        or statement_of.get(row.indicator_id, "")
    )


def _change_lines(
    row: Any, statement_of_finding: dict[str, str], statement_of: dict[str, str], width: int
) -> list[str]:
    """One change: a headline with the finding's own statement, then indented detail:
    before → after of every changed column (long texts on lines of their own, wrapped,
    never cut), or the answer that was added or removed."""
    before, after = change_values(row)
    own = before if row.change_kind == "removed" else after
    statement = change_statement(row, statement_of_finding, statement_of)
    mark = {"added": "+", "removed": "-", "edited": "~"}[row.change_kind]
    head = f"  {mark} {row.change_kind:<7} {format_value(row.survey_year):>4}  "
    lines = [head + textwrap.shorten(statement, max(20, width - len(head)))]
    detail = " " * 6
    if row.change_kind == "edited":
        for column in row.columns_changed:
            old, new = format_value(before.get(column)), format_value(after.get(column))
            one_line = f"{detail}{column}: {old} → {new}"
            if len(one_line) <= width:
                lines.append(one_line)
                continue
            lines.append(f"{detail}{column}:")
            for label, value in (("before:", old), ("after: ", new)):
                lines.extend(
                    textwrap.wrap(
                        f"{label} {value}",
                        width,
                        initial_indent=detail + "  ",
                        subsequent_indent=detail + "  " + " " * 8,
                    )
                )
    else:
        answer = f"{format_value(own.get('local_status'))}: {format_value(own.get('local_answer'))}"
        lines.extend(
            textwrap.wrap(answer, width, initial_indent=detail, subsequent_indent=detail + "  ")
        )
    return lines


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a JSON string (object dtype), so lists, dates and nulls compare by value."""

    def encode(value: Any) -> str:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if value is pd.NA or (isinstance(value, float) and pd.isna(value)):
            value = None
        return json.dumps(value, default=str, ensure_ascii=False)

    return pd.DataFrame(
        {
            column: pd.Series([encode(v) for v in frame[column]], dtype=object)
            for column in frame.columns
        },
        columns=list(frame.columns),
    )


def diff_releases(datasets_dir: Path | str, release_a: int, release_b: int) -> pd.DataFrame:
    """Rows added, removed and changed per table from release A to release B (a row is
    matched by its table's key, `ROW_KEYS`)."""
    rows = []
    for name in (*VERSIONED_TABLES, "runs"):
        a = _load_or_empty(name, release_a, datasets_dir)
        b = _load_or_empty(name, release_b, datasets_dir)
        keys = ROW_KEYS[name]
        a_cmp, b_cmp = _comparable(a), _comparable(b)
        merged = a_cmp.merge(b_cmp, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
        others = [c for c in TABLES[name].names if c not in keys]
        both = merged[merged["_merge"] == "both"]
        changed = (
            (
                both[[f"{c}_a" for c in others]].to_numpy()
                != both[[f"{c}_b" for c in others]].to_numpy()
            )
            .any(axis=1)
            .sum()
            if others and len(both)
            else 0
        )
        rows.append(
            {
                "table": name,
                "rows_a": len(a),
                "rows_b": len(b),
                "added": int((merged["_merge"] == "right_only").sum()),
                "removed": int((merged["_merge"] == "left_only").sum()),
                "changed": int(changed),
            }
        )
    return pd.DataFrame(rows)


def _load_or_empty(name: str, release: int, datasets_dir: Path | str) -> pd.DataFrame:
    found = storage.get_release(datasets_dir, release)  # NoReleaseError when absent
    if name != "runs" and found.get(f"{name}_version") is None:
        return storage._to_pandas(TABLES[name].empty_table())  # a release from before the table
    frame = storage.load_table(name, release, datasets_dir)
    # A release from before the table and card layouts (schema 2) lacks their columns: it
    # held municipalities' statement/answer pairs only, which is what the defaults say, so
    # its rows still match the same rows of a later release.
    for column, default in _LAYOUT_DEFAULTS.items():
        if column in TABLES[name].names and column not in frame.columns:
            if default is _MUNICIPALITY:
                default = frame["municipality"] if name == "observations" else None
            frame[column] = default
    return frame


_MUNICIPALITY = object()
_LAYOUT_DEFAULTS: dict[str, Any] = {
    "entity_kind": "municipality",
    "entity": _MUNICIPALITY,  # observations: the municipality; findings: null (see schemas)
    "national_measure": "share_of_municipalities",
    "national_value": None,
    "comparison": None,
    "national_comparison": None,
}


# --- `oj check`: what a researcher must know before citing a release -------------------------


def quality_counts(datasets_dir: Path | str, release: int | None = None) -> dict[str, Any]:
    """Counts of what makes figures uncertain in a release: national-figure conflicts
    (one indicator and survey year, several national percents; the first one named by
    its question, for a one-line summary), observations whose national figure is flagged
    (negated, several figures, a range, vague: by flag), and findings whose survey year
    is null, by the basis that says why."""
    # Arrow, not pandas: the nightly summary calls this after every release, and the
    # tables grow with the archive.
    links = storage.load_arrow(
        "indicator_links",
        release,
        datasets_dir,
        columns=["resolved_survey_year", "resolved_survey_year_basis"],
    )
    columns = ["indicator_id", "survey_year", "national_conflict", "national_percent_all_values"]
    try:
        observations = storage.load_arrow(
            "observations", release, datasets_dir, columns=[*columns, "national_flags"]
        )
    except pa.ArrowInvalid:  # a release from before observations carried the flags
        observations = storage.load_arrow("observations", release, datasets_dir, columns=columns)
    conflicting = observations.filter(pc.field("national_conflict"))
    # (indicator, year) -> its figures; conflicts are few, so plain Python is enough
    conflict_keys = {
        (row["indicator_id"], row["survey_year"]): row["national_percent_all_values"]
        for row in conflicting.select(
            ["indicator_id", "survey_year", "national_percent_all_values"]
        ).to_pylist()
    }
    first_conflict = None
    if conflict_keys:
        (indicator_id, year), figures = min(conflict_keys.items())
        indicators = storage.load_arrow(
            "indicators", release, datasets_dir, columns=["indicator_id", "canonical_statement"]
        ).filter(pc.field("indicator_id") == indicator_id)
        statement = indicators["canonical_statement"][0].as_py() if indicators.num_rows else ""
        first_conflict = (
            f"{question_label(statement, 60)} ({year}: "
            + " vs ".join(f"{format_value(value)} %" for value in figures)
            + ")"
        )
    no_year = links.filter(pc.field("resolved_survey_year").is_null())

    def by_basis(table: pa.Table) -> dict[str, int]:
        counts = pc.value_counts(table["resolved_survey_year_basis"]).to_pylist()
        ordered = sorted(counts, key=lambda item: (-item["counts"], str(item["values"])))
        return {str(item["values"]): int(item["counts"]) for item in ordered}

    flagged: dict[str, int] = {}
    if "national_flags" in observations.column_names:
        flags = pc.list_flatten(observations["national_flags"])
        flagged = {
            str(item["values"]): int(item["counts"]) for item in pc.value_counts(flags).to_pylist()
        }
    return {
        "national_conflicts": len(conflict_keys),
        "first_national_conflict": first_conflict,
        "national_flags": {name: flagged[name] for name in NATIONAL_FLAGS if name in flagged},
        "findings_without_year": no_year.num_rows,
        "findings_without_year_by_basis": by_basis(no_year),
        "survey_year_basis": by_basis(links),
        "findings": links.num_rows,
    }


#: How `oj check` names each national flag, and what a researcher must know of it.
_FLAG_NOTES = {
    "national_share_negated": "printed as the share WITHOUT the thing; the series holds 100 − it",
    "national_several_figures": "several figures for different groups; the series holds the first",
    "national_range": "a range across groups; no single figure in the series",
    "national_vague": "a share in words only ('Få kommuner', 'knappt hälften'); no figure",
}


def _figure_text(printed: float | None, negated: bool) -> str:
    """A national figure as `oj check` shows it: in the series' sense, and as printed."""
    if printed is None or pd.isna(printed):
        return "–"
    if negated:
        with_it = format_value(round(100 - printed, 6))
        return f"{with_it} % (printed {format_value(printed)} % without)"
    return f"{format_value(printed)} %"


def check_report(datasets_dir: Path | str, release: int | None = None) -> tuple[str, dict]:
    """`oj check`: every national-figure conflict by its question, survey year and the
    differing figures, with where each was printed; every flagged national value
    (negated, several figures, a range, vague) by question and year; and the findings
    without a survey year, with counts."""
    release = storage.get_release(datasets_dir, release)["release"]
    counts = quality_counts(datasets_dir, release)
    n_flagged = sum(counts["national_flags"].values())
    lines = [
        f"release {release}: {plural(counts['findings'], 'finding')}, "
        f"{plural(counts['national_conflicts'], 'national-figure conflict')}, "
        f"{plural(n_flagged, 'flagged national value')}, "
        f"{plural(counts['findings_without_year'], 'finding')} without a survey year",
        "",
        "survey year basis (resolved over the release):",
    ]
    for basis, n in sorted(counts["survey_year_basis"].items(), key=lambda item: -item[1]):
        lines.append(f"  {basis:<24} {n:>7}")
    if counts["national_conflicts"] or n_flagged:
        indicators = storage.load_table(
            "indicators", release, datasets_dir, columns=["indicator_id", "canonical_statement"]
        )
        statement = dict(
            zip(indicators["indicator_id"], indicators["canonical_statement"], strict=True)
        )
        links = storage.load_table(
            "indicator_links",
            release,
            datasets_dir,
            columns=["finding_id", "indicator_id", "resolved_survey_year"],
        ).rename(columns={"resolved_survey_year": "survey_year"})
        findings = storage.load_table(
            "findings",
            release,
            datasets_dir,
            columns=[
                "finding_id",
                "url",
                "captured_at",
                "municipality",
                "national_statement",
                "national_percent",
                "national_values",
                "flags",
            ],
        ).merge(links, on="finding_id")
        findings["negated"] = findings["flags"].map(lambda f: "national_share_negated" in f)
    if counts["national_conflicts"]:
        observations = storage.load_table(
            "observations",
            release,
            datasets_dir,
            columns=["indicator_id", "survey_year", "national_conflict"],
        )
        conflicting = observations[observations["national_conflict"]]
        lines += [
            "",
            "national-figure conflicts (one question and survey year, several figures; "
            "figures in the question's own sense):",
        ]
        keys = conflicting[["indicator_id", "survey_year"]].drop_duplicates()
        for indicator_id, year in keys.sort_values(["indicator_id", "survey_year"]).itertuples(
            index=False
        ):
            rows = findings[
                (findings["indicator_id"] == indicator_id) & (findings["survey_year"] == year)
            ].dropna(subset=["national_percent"])
            printed = rows["national_percent"]
            series = printed.where(~rows["negated"], 100 - printed)
            figures = " vs ".join(f"{format_value(round(v, 6))} %" for v in series.unique())
            lines.append(
                f"  {question_label(statement.get(indicator_id, ''))} — {year}: {figures}"
                f"  [{indicator_id}]"
            )
            for row in rows.drop_duplicates(
                ["url", "captured_at", "national_percent"]
            ).itertuples():
                lines.append(
                    f"      {_figure_text(row.national_percent, row.negated):>6}  "
                    f"{row.municipality or '?'}  {row.url}  "
                    f"captured {format_value(row.captured_at)}"
                )
    if n_flagged:
        lines += [
            "",
            "flagged national values (check the page before citing; one line per question, "
            "year and wording):",
        ]
        for flag in NATIONAL_FLAGS:
            if flag not in counts["national_flags"]:
                continue
            rows = findings[findings["flags"].map(lambda f, flag=flag: flag in f)]
            rows = rows.drop_duplicates(["indicator_id", "survey_year", "national_statement"])
            lines.append(f"  {flag}: {_FLAG_NOTES[flag]}")
            rows = rows.sort_values(["indicator_id", "survey_year"], na_position="first")
            for row in rows.itertuples():
                if flag == "national_share_negated":
                    figures = _figure_text(row.national_percent, True)
                elif flag == "national_vague":
                    figures = textwrap.shorten(row.national_statement, 50, placeholder=" ...")
                else:
                    figures = ", ".join(f"{format_value(v)} %" for v in row.national_values)
                year = "?" if pd.isna(row.survey_year) else int(row.survey_year)
                lines.append(
                    f"      {question_label(row.national_statement, 70)} ({year}): {figures}"
                )
    if counts["findings_without_year"]:
        lines += ["", "findings without a survey year, by why:"]
        for basis, n in counts["findings_without_year_by_basis"].items():
            lines.append(f"  {basis:<24} {n:>7}")
    return "\n".join(lines) + "\n", counts
