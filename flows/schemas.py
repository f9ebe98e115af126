"""Every published table, declared once: column types, nullability, descriptions, fixed sets.

`flows.storage` enforces these on every write and stores the descriptions with the
Delta table (field metadata), so `DeltaTable(path).schema()` documents itself.
"""

from __future__ import annotations

import pyarrow as pa

from parsers import (
    COMPARISONS,
    ENTITY_KINDS,
    FLAGS,
    LOCAL_STATUSES,
    NATIONAL_COMPARISONS,
    NATIONAL_FLAGS,
    NATIONAL_MEASURES,
    REJECT_REASONS,
    SURVEY_YEAR_BASES,
)

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")  # naive timestamps would raise the Delta protocol


def _list_of(type_: pa.DataType) -> pa.DataType:
    # Delta names list items "element"; declaring the same keeps round trips identical.
    return pa.list_(pa.field("element", type_))


#: Reasons a whole page lands in `rejects` (besides the parser's own reasons).
PAGE_REJECT_REASONS = {
    "unreadable_page": "the snapshot could not be read or decoded as a page",
    "unreadable_record": (
        "the raw archive's record file could not be used (bad JSON, a missing key, a URL "
        "that is not http(s), a time without a time zone); the text says which and why"
    ),
    "page_too_large": "the raw object is larger than the pipeline parses (20 MB); not parsed",
    "parse_timeout": "parsing the page took longer than the pipeline allows (60 s)",
}
#: Version of the published tables' layout. "2": `findings` hold one row per bullet per
#: distinct page version (not per capture), `pages` and `findings` carry `version_id`, and a
#: byte-identical recapture is a `pages` row with parse_status 'recapture'. A release of
#: another schema version is rebuilt by the next run (a re-parse, `pipeline.plan_run`).
#: "3": `findings` and `observations` carry entity_kind, entity, national_measure,
#: national_value and comparison (result tables and county cards, issue 22).
SCHEMA_VERSION = "3"
#: Values of `pages.parse_status`.
PARSE_STATUSES = ("parsed", "no_findings", "failed", "recapture")
#: What each parse status means (the data dictionary prints these with `pages`).
PARSE_STATUS_MEANINGS = {
    "parsed": "parsed, with findings",
    "no_findings": "parsed, no finding on the page",
    "failed": "could not be read or parsed (see error and rejects)",
    "recapture": "byte-identical to a version parsed before (same URL, bytes and parser); its "
    "findings are that version's, see version_id",
}
#: Where a snapshot came from (mirrors flows.raw_archive.SOURCES).
SNAPSHOT_SOURCES = ("seed", "live", "wayback", "warc")
#: How a release was built.
RELEASE_MODES = ("append", "reparse", "relink")
DERIVATIONS = ("full", "incremental")


def _field(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


_SNAPSHOT_FIELDS = [
    _field(
        "snapshot_id",
        pa.string(),
        "id of the raw snapshot record (raw/records/<id>.json)",
        nullable=False,
    ),
    _field(
        "raw_sha256",
        pa.string(),
        "sha256 of the snapshot's bytes (raw/objects/..); null for an unreadable record",
    ),
    _field("url", pa.string(), "URL of the page; null for an unreadable record without one"),
    _field("captured_at", UTC_TIMESTAMP, "when the snapshot was captured (UTC); null if unknown"),
]
_VERSION_ID = _field(
    "version_id",
    pa.string(),
    "the distinct page version: first 20 hex of sha256 over the page key of url, raw_sha256 "
    "and parser_version (joined by U+001F); byte-identical recaptures of a page share it. "
    "Null for an unreadable record",
)

PAGES = pa.schema(
    _SNAPSHOT_FIELDS
    + [
        _VERSION_ID,
        _field("municipality", pa.string(), "municipality the page belongs to"),
        _field(
            "area",
            pa.string(),
            "page title: the area of social services; null on a recapture row (the version's "
            "first capture has it, same version_id)",
        ),
        _field(
            "page_updated",
            pa.date32(),
            "'Senast uppdaterad' date printed on the page; null on a recapture row",
        ),
        _field(
            "page_published",
            pa.date32(),
            "'Publicerad' date printed on the page; null on a recapture row",
        ),
        _field(
            "source",
            pa.string(),
            f"where the snapshot came from: {SNAPSHOT_SOURCES}; null for an unreadable record",
        ),
        _field("input_format", pa.string(), "'html' or 'text' (detected from the content)"),
        _field("charset", pa.string(), "charset used to decode the bytes"),
        _field(
            "parse_status",
            pa.string(),
            "; ".join(f"{name}: {text}" for name, text in PARSE_STATUS_MEANINGS.items()),
            nullable=False,
        ),
        _field("error", pa.string(), "why the page could not be parsed (parse_status 'failed')"),
        _field("parser_version", pa.string(), "version of parsers/ that parsed it", nullable=False),
        _field(
            "n_findings",
            pa.int32(),
            "findings parsed from the page; 0 on a recapture row (see version_id)",
            nullable=False,
        ),
        _field("n_rejects", pa.int32(), "rejects recorded for the page", nullable=False),
        _field(
            "raw_segment",
            pa.string(),  # one value per ~10,000 rows: Parquet dictionary-encodes it
            "segment file the record was read from (raw/segments/<name>); null for a "
            "record file (raw/records/<id>.json). Its distinct values are the segments "
            "the release consumed: a run lists raw/segments/ and reads only the others",
        ),
    ]
)


def _layout_fields(row: str) -> list[pa.Field]:
    """The columns of the table and card layouts (parsers/layouts/, issue 22), shared by
    `findings` and `observations`."""
    return [
        _field(
            "entity_kind",
            pa.string(),
            f"whose figure local_value is: {ENTITY_KINDS}; 'county' for a county's indicator "
            "card ('80 procent av länets kommuner ...'), whose municipality is null",
            nullable=False,
        ),
        _field(
            "entity",
            pa.string(),
            "the county's or region's name when entity_kind is 'county' (from the page title, "
            "'Öppna jämförelser i Kronobergs län'; null when the page does not name it); "
            + (
                "the municipality's name on a result table; null on statement/answer pairs and "
                "relative lists, whose entity is `municipality`"
                if row == "finding"
                else "otherwise the municipality (part of the row's key: a county's "
                "observation never mixes with a municipality's)"
            ),
        ),
        _field(
            "national_measure",
            pa.string(),
            f"what the national figure measures: {NATIONAL_MEASURES}; statement/answer pairs "
            "state shares of municipalities; a result table's column is a mean of respondents, "
            "an index or a count as often: chart only share_of_municipalities as such. Null "
            "when no national figure is stated (cards, relative lists on tables)",
        ),
        _field(
            "national_value",
            pa.float64(),
            "the national figure beside the entity's on a result table, whatever it measures "
            "(national_measure); national_percent holds it only when it is a share. Null on "
            "statement/answer pairs (their figure is national_percent) and cards",
        ),
        _field(
            "comparison",
            pa.string(),
            f"{COMPARISONS}: the entity's figure against the national one, or the page's "
            "verbal 'högre/lägre än riket', 'något under medianen i riket'; before any "
            "judgement of better or worse"
            + (
                ""
                if row == "finding"
                else " (national_comparison is that judgement where the indicator's direction "
                "is declared in indicator_overrides.toml [directions])"
            ),
        ),
    ]


FINDINGS = pa.schema(
    [
        _field(
            "finding_id",
            pa.string(),
            "deterministic id: hash of snapshot_id and position",
            nullable=False,
        ),
    ]
    + _SNAPSHOT_FIELDS
    + [
        _VERSION_ID,
        _field("parser_version", pa.string(), "version of parsers/ that parsed it", nullable=False),
        _field("municipality", pa.string(), "municipality the answer is about"),
        _field("area", pa.string(), "page title: the area of social services"),
        _field("page_updated", pa.date32(), "'Senast uppdaterad' date printed on the page"),
        _field("page_published", pa.date32(), "'Publicerad' date printed on the page"),
        _field(
            "section",
            pa.string(),
            "results heading as printed, e.g. '2019 års resultat visar att:'",
            nullable=False,
        ),
        _field(
            "survey_year",
            pa.int32(),
            "survey year of the finding, from the page alone; null when the page cannot tell "
            "(see survey_year_basis; observations.survey_year also uses the rest of the archive)",
        ),
        _field(
            "survey_year_basis",
            pa.string(),
            "how survey_year was decided, strongest evidence first: heading ('2019 års "
            "resultat'), page_title, stated_year (a year attached to the current national "
            "figure), comparison_year (the year after the latest compared survey), "
            "page_updated / page_published / captured_at (the date read with the publication "
            "calendar: July-December of Y -> Y, January-February of Y+1 -> Y, March-June "
            "ambiguous), conflict (evidence disagrees; year null), none (nothing determines "
            "it; year null)",
            nullable=False,
        ),
        _field("position", pa.int32(), "1-based order of the finding on the page", nullable=False),
        _field(
            "national_statement",
            pa.string(),
            "the national statement, whitespace normalised",
            nullable=False,
        ),
        _field(
            "national_percent",
            pa.float64(),
            "the current national share as printed, in percent (the first figure when several "
            "are given, flag national_several_figures; the share *without* the thing when "
            "flagged national_share_negated); null when the text does not determine one (flags "
            "national_vague, national_range) or states no share",
        ),
        _field(
            "national_values",
            _list_of(pa.float64()),
            "every level percentage stated in the statement, in order: earlier surveys' figures "
            "and both ends of a range included; bounded words ('knappt hälften') never",
            nullable=False,
        ),
        _field(
            "national_comparison",
            pa.string(),
            f"{NATIONAL_COMPARISONS}: the municipality's result relative to the national "
            "average, for pages that state results that way ('ligger bättre till än "
            "riksgenomsnittet när det gäller:'); null for statement/answer pairs",
        ),
        _field("local_answer", pa.string(), "the municipality's answer; null when none"),
        _field("local_status", pa.string(), f"one of {LOCAL_STATUSES}; null without an answer"),
        _field("local_value", pa.float64(), "a figure stated for the municipality"),
    ]
    + _layout_fields("finding")
    + [
        _field(
            "flags",
            _list_of(pa.string()),
            "quality flags: " + "; ".join(f"{name}: {text}" for name, text in FLAGS.items()),
            nullable=False,
        ),
    ]
)

REJECTS = pa.schema(
    _SNAPSHOT_FIELDS
    + [
        _field("parser_version", pa.string(), "version of parsers/ that parsed it", nullable=False),
        _field(
            "reason",
            pa.string(),
            f"why: {sorted(REJECT_REASONS) + sorted(PAGE_REJECT_REASONS)}",
            nullable=False,
        ),
        _field("section", pa.string(), "results heading the text was under, if any"),
        _field("line", pa.int32(), "1-based line in the page's text form, if known"),
        _field(
            "text",
            pa.string(),
            "the text that was not turned into a finding, or the error",
            nullable=False,
        ),
    ]
)

_LINK_METHODS = ("exact", "fuzzy", "override")
#: Bases of a survey year resolved over a release: the parser's, plus a match by figure.
RESOLVED_YEAR_BASES = SURVEY_YEAR_BASES

INDICATORS = pa.schema(
    [
        _field(
            "indicator_id", pa.string(), "stable id of a national survey question", nullable=False
        ),
        _field("area", pa.string(), "area (page title) the question belongs to", nullable=False),
        _field(
            "canonical_statement",
            pa.string(),
            "the question's most recent wording, as printed",
            nullable=False,
        ),
        _field(
            "normalized_statement",
            pa.string(),
            "the wording it was founded on, normalised (figures, years, openings removed)",
            nullable=False,
        ),
        _field("first_survey_year", pa.int32(), "earliest survey year it was asked"),
        _field("last_survey_year", pa.int32(), "latest survey year it was asked"),
        _field("n_observations", pa.int32(), "rows in `observations`", nullable=False),
        _field(
            "n_wordings", pa.int32(), "distinct national statements linked to it", nullable=False
        ),
        _field("n_findings", pa.int32(), "findings linked to it", nullable=False),
    ]
)

INDICATOR_LINKS = pa.schema(
    [
        _field("finding_id", pa.string(), "the finding (findings.finding_id)", nullable=False),
        _field("indicator_id", pa.string(), "the indicator it is linked to", nullable=False),
        _field("area", pa.string(), "area of the finding", nullable=False),
        _field(
            "normalized_statement",
            pa.string(),
            "the finding's statement, normalised",
            nullable=False,
        ),
        _field(
            "link_method",
            pa.string(),
            f"how: {_LINK_METHODS}; exact = the same normalised text as the indicator's "
            "founding statement",
            nullable=False,
        ),
        _field(
            "link_score",
            pa.float64(),
            "fuzzy score 0-100 (100 for exact and override)",
            nullable=False,
        ),
        _field(
            "linked_to", pa.string(), "the normalised statement it was matched with", nullable=False
        ),
        _field(
            "resolved_survey_year",
            pa.int32(),
            "the finding's survey year resolved over the whole release (see observations); "
            "findings.survey_year is the page's own",
        ),
        _field(
            "resolved_survey_year_basis",
            pa.string(),
            f"how: {RESOLVED_YEAR_BASES}",
            nullable=False,
        ),
    ]
)

OBSERVATIONS = pa.schema(
    [
        _field("municipality", pa.string(), "municipality"),
        _field("indicator_id", pa.string(), "the question", nullable=False),
        _field("area", pa.string(), "area of the question", nullable=False),
        _field(
            "survey_year",
            pa.int32(),
            "survey year resolved over the whole release: the finding's own year, or, for a "
            "finding whose page could not tell, the year of a dated section elsewhere in the "
            "archive with the same question, wording and national figure; null when neither",
        ),
        _field(
            "survey_year_basis",
            pa.string(),
            f"how survey_year was decided: {RESOLVED_YEAR_BASES}; the strongest basis among "
            "the findings behind the row",
            nullable=False,
        ),
        _field(
            "national_percent",
            pa.float64(),
            "national share of municipalities that have/do what the question asks, in the "
            "question's own (positive) sense: 100 − the printed share when the page states the "
            "share without it (flag national_share_negated); from the latest snapshot",
        ),
        _field(
            "national_percent_printed",
            pa.float64(),
            "the national figure as printed on the latest snapshot (findings.national_percent); "
            "differs from national_percent when the share was printed negated",
        ),
        _field(
            "national_flags",
            _list_of(pa.string()),
            "the national-figure flags of the findings behind the row (see findings.flags): "
            + ", ".join(NATIONAL_FLAGS),
            nullable=False,
        ),
        _field("local_status", pa.string(), "local status, from the latest snapshot"),
        _field("local_answer", pa.string(), "local answer, from the latest snapshot"),
        _field("local_value", pa.float64(), "local figure, from the latest snapshot"),
        _field(
            "national_comparison",
            pa.string(),
            f"{NATIONAL_COMPARISONS}: as printed ('bättre än riket', a relative list's "
            "heading), or from comparison higher/lower where indicator_overrides.toml "
            "[directions] declares whether higher is better; from the latest snapshot",
        ),
    ]
    + _layout_fields("observation")
    + [
        _field("first_seen", pa.date32(), "first capture (or page date) that carried it"),
        _field("last_seen", pa.date32(), "last capture (or page date) that carried it"),
        _field(
            "n_snapshots",
            pa.int32(),
            "distinct page versions that carried it, each counted once by its first capture "
            "(byte-identical recaptures are not counted: see pages.version_id)",
            nullable=False,
        ),
        _field(
            "snapshot_ids",
            _list_of(pa.string()),
            "those versions' first captures",
            nullable=False,
        ),
        _field("finding_ids", _list_of(pa.string()), "the findings behind it", nullable=False),
        _field(
            "conflict", pa.bool_(), "snapshots disagree on a value (see *_values)", nullable=False
        ),
        _field(
            "conflict_columns",
            _list_of(pa.string()),
            "columns whose values disagree",
            nullable=False,
        ),
        _field(
            "national_conflict",
            pa.bool_(),
            "the same indicator and survey year carries different national percents somewhere "
            "in the release (other snapshots, pages or municipalities); `oj check` lists them",
            nullable=False,
        ),
        _field(
            "national_percent_all_values",
            _list_of(pa.float64()),
            "every distinct national percent of this indicator and survey year in the release, "
            "in the question's own sense (like national_percent)",
            nullable=False,
        ),
        _field(
            "national_percent_values",
            _list_of(pa.float64()),
            "every distinct national_percent seen, oldest first (in the question's own sense)",
            nullable=False,
        ),
        _field(
            "local_status_values",
            _list_of(pa.string()),
            "every distinct local_status seen, oldest first",
            nullable=False,
        ),
        _field(
            "local_answer_values",
            _list_of(pa.string()),
            "every distinct local_answer seen, oldest first",
            nullable=False,
        ),
        _field(
            "local_value_values",
            _list_of(pa.float64()),
            "every distinct local_value seen, oldest first",
            nullable=False,
        ),
    ]
)

CHANGE_KINDS = ("added", "removed", "edited")

CHANGES = pa.schema(
    [
        _field("url", pa.string(), "the page", nullable=False),
        _field("area", pa.string(), "area of the page"),
        _field("municipality", pa.string(), "municipality"),
        _field(
            "from_snapshot_id",
            pa.string(),
            "the earlier capture (its findings: its version's, by pages.version_id)",
            nullable=False,
        ),
        _field(
            "to_snapshot_id",
            pa.string(),
            "the next capture of the same page, of another version (a recapture of an older "
            "version too: a page back to earlier bytes)",
            nullable=False,
        ),
        _field("from_seen", pa.date32(), "capture (or page) date of the earlier snapshot"),
        _field("to_seen", pa.date32(), "capture (or page) date of the later snapshot"),
        _field("change_kind", pa.string(), f"one of {CHANGE_KINDS}", nullable=False),
        _field("indicator_id", pa.string(), "the question", nullable=False),
        _field("survey_year", pa.int32(), "survey year of the finding"),
        _field("finding_id_before", pa.string(), "finding in the earlier snapshot"),
        _field("finding_id_after", pa.string(), "finding in the later snapshot"),
        _field(
            "columns_changed",
            _list_of(pa.string()),
            "what differs (edited), or every compared column (added, removed)",
            nullable=False,
        ),
        _field("before", pa.string(), "JSON of those columns' earlier values"),
        _field("after", pa.string(), "JSON of those columns' later values"),
        _field("local_status_before", pa.string(), "local status before"),
        _field("local_status_after", pa.string(), "local status after"),
        _field("local_status_flip", pa.bool_(), "an edit changed local_status", nullable=False),
        _field(
            "national_percent_before",
            pa.float64(),
            "national share before, in the question's own sense (see observations."
            "national_percent): a wording that flips from 'har inte' to 'har' is no change",
        ),
        _field("national_percent_after", pa.float64(), "national share after, in the same sense"),
        _field(
            "national_changed",
            pa.bool_(),
            "an edit changed the national figure for the same survey year",
            nullable=False,
        ),
    ]
)

RUNS = pa.schema(
    [
        _field(
            "release",
            pa.int64(),
            "release number: what analysts and researchers cite",
            nullable=False,
        ),
        _field(
            "run_id", pa.string(), "unique id of the run that wrote the release", nullable=False
        ),
        _field("flow_run_id", pa.string(), "Prefect flow run id, when run under Prefect"),
        _field("started_at", UTC_TIMESTAMP, "when the run started (UTC)", nullable=False),
        _field(
            "finished_at", UTC_TIMESTAMP, "when the release was committed (UTC)", nullable=False
        ),
        _field(
            "parser_version", pa.string(), "version of parsers/ behind the release", nullable=False
        ),
        _field(
            "mode",
            pa.string(),
            f"{RELEASE_MODES}: appended new snapshots, re-parsed all, or re-linked indicators",
            nullable=False,
        ),
        _field(
            "pages_version", pa.int64(), "Delta version of `pages` in this release", nullable=False
        ),
        _field(
            "findings_version",
            pa.int64(),
            "Delta version of `findings` in this release",
            nullable=False,
        ),
        _field(
            "rejects_version",
            pa.int64(),
            "Delta version of `rejects` in this release",
            nullable=False,
        ),
        _field("indicators_version", pa.int64(), "Delta version of `indicators`", nullable=False),
        _field(
            "indicator_links_version",
            pa.int64(),
            "Delta version of `indicator_links`",
            nullable=False,
        ),
        _field(
            "observations_version", pa.int64(), "Delta version of `observations`", nullable=False
        ),
        _field("changes_version", pa.int64(), "Delta version of `changes`", nullable=False),
        _field("overrides_sha256", pa.string(), "sha256 of the indicator override file used"),
        _field("n_pages_new", pa.int64(), "page snapshots parsed by this run", nullable=False),
        _field("n_findings_new", pa.int64(), "findings added by this run", nullable=False),
        _field("n_rejects_new", pa.int64(), "rejects added by this run", nullable=False),
        _field("n_pages", pa.int64(), "page snapshots in the release", nullable=False),
        _field("n_findings", pa.int64(), "findings in the release", nullable=False),
        _field("n_rejects", pa.int64(), "rejects in the release", nullable=False),
        _field(
            "schema_version",
            pa.string(),
            "layout version of the published tables (flows.schemas.SCHEMA_VERSION); null for "
            "releases written before it was recorded (schema 1: findings per capture)",
        ),
        _field(
            "derivation",
            pa.string(),
            f"{DERIVATIONS}: how the history tables were updated: rebuilt from every "
            "finding, or only the indicators and pages the new findings touch (identical "
            "rows either way); null for releases written before it was recorded",
        ),
    ]
)

#: The published tables, in the order a release writes them (`runs` last: it commits).
TABLES: dict[str, pa.Schema] = {
    "pages": PAGES,
    "findings": FINDINGS,
    "rejects": REJECTS,
    "indicators": INDICATORS,
    "indicator_links": INDICATOR_LINKS,
    "observations": OBSERVATIONS,
    "changes": CHANGES,
    "runs": RUNS,
}
#: Tables of parsed rows, appended batch by batch.
DATA_TABLES = ("pages", "findings", "rejects")
#: Tables derived from the whole release (history across snapshots), rewritten each release.
DERIVED_TABLES = ("indicators", "indicator_links", "observations", "changes")
#: Every table whose Delta version a release pins.
VERSIONED_TABLES = DATA_TABLES + DERIVED_TABLES

#: Columns whose values must come from a fixed set.
FIXED_SETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("pages", "parse_status"): PARSE_STATUSES,
    ("pages", "source"): SNAPSHOT_SOURCES,
    ("findings", "survey_year_basis"): SURVEY_YEAR_BASES,
    ("findings", "local_status"): LOCAL_STATUSES,
    ("findings", "national_comparison"): NATIONAL_COMPARISONS,
    ("findings", "entity_kind"): ENTITY_KINDS,
    ("findings", "national_measure"): NATIONAL_MEASURES,
    ("findings", "comparison"): COMPARISONS,
    ("observations", "entity_kind"): ENTITY_KINDS,
    ("observations", "national_measure"): NATIONAL_MEASURES,
    ("observations", "comparison"): COMPARISONS,
    ("observations", "national_comparison"): NATIONAL_COMPARISONS,
    ("indicator_links", "resolved_survey_year_basis"): RESOLVED_YEAR_BASES,
    ("observations", "survey_year_basis"): RESOLVED_YEAR_BASES,
    ("rejects", "reason"): tuple(REJECT_REASONS) + tuple(PAGE_REJECT_REASONS),
    ("runs", "mode"): RELEASE_MODES,
    ("runs", "derivation"): DERIVATIONS,
    ("indicator_links", "link_method"): _LINK_METHODS,
    ("changes", "change_kind"): CHANGE_KINDS,
}


def describe(table: str) -> dict[str, str]:
    """Column -> description of a published table."""
    return {field.name: field.metadata[b"description"].decode("utf-8") for field in TABLES[table]}


#: What one row of each table is, its key, and where it comes from (the data dictionary
#: and the data package print these).
TABLE_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "pages": {
        "row": "one page snapshot (capture) of the raw archive, parsed or not",
        "key": "snapshot_id",
        "source": "parsed from raw/ by `parsers.parse_page`, once per distinct version "
        "(version_id); a byte-identical recapture is here with parse_status 'recapture' and "
        "is not parsed again; a page that cannot be parsed is here too, with parse_status "
        "'failed' and the error",
    },
    "findings": {
        "row": "one result of one distinct page version: a bullet pair (a national statement "
        "with its share and the municipality's local answer), a relative list's bullet, a "
        "result table's row and year, or a county's indicator card",
        "key": "finding_id",
        "source": "parsed from the version's first capture (snapshot_id, captured_at); every "
        "capture's findings: pages[['snapshot_id', 'captured_at', 'version_id']] joined with "
        "findings on version_id; survey_year is what that page alone tells",
    },
    "rejects": {
        "row": "a line or page the parser could not turn into a finding, with the reason",
        "key": "(snapshot_id, line)",
        "source": "parsed from the page snapshot",
    },
    "indicators": {
        "row": "one national survey question, linked across rewordings within an area",
        "key": "indicator_id (stable from release to release)",
        "source": "derived from every finding of the release (flows/history.py, "
        "parsers/linking.py); overrides in indicator_overrides.toml",
    },
    "indicator_links": {
        "row": "how one finding was linked to its indicator, and its survey year resolved "
        "over the whole release",
        "key": "finding_id",
        "source": "derived from every finding of the release (flows/history.py)",
    },
    "observations": {
        "row": "one (entity, indicator, survey year), deduplicated over every snapshot "
        "that carried it; disagreeing snapshots keep every value",
        "key": "(entity_kind, entity, indicator_id, survey_year)",
        "source": "derived from the findings and their links (flows/history.py)",
    },
    "changes": {
        "row": "one finding added, removed or edited between consecutive snapshots of a page",
        "key": "(to_snapshot_id, indicator_id, survey_year, change_kind, "
        "finding_id_before, finding_id_after)",
        "source": "derived from the findings and their links (flows/history.py)",
    },
    "runs": {
        "row": "one release: what a citation names; it pins the Delta version of every table",
        "key": "release",
        "source": "written last by each run that publishes (flows/storage.py)",
    },
}
