"""Change over time: indicators, indicator links, observations and changes, derived from
all findings of a release. Plain functions over polars frames (columnar: one pass per
table, no Python object per finding); `flows.storage` writes the Arrow tables they give.

- indicators: one row per national question, linked across rewordings within an area
  (`parsers.linking`), with ids kept stable from the previous release.
- observations: one row per (municipality, indicator, survey year), deduplicated over the
  snapshots that carried it; disagreeing snapshots keep every value and are flagged.
- changes: what differs between consecutive snapshots of the same page.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from flows.errors import UsageError, plural
from flows.schemas import (
    CHANGES,
    INDICATOR_LINKS,
    INDICATORS,
    OBSERVATIONS,
    RESOLVED_YEAR_BASES,
)
from flows.sources import page_key
from parsers import DIRECTIONS, NATIONAL_FLAGS, normalize_label
from parsers.layouts import judged
from parsers.linking import Occurrence, link_statements, normalize_statement

#: Columns compared between snapshots and between observations.
COMPARED = ("national_statement", "national_percent", "local_answer", "local_status", "local_value")
OBSERVED = ("national_percent", "local_status", "local_answer", "local_value")
#: The findings columns the derivations read.
COLUMNS_USED = (
    "finding_id",
    "snapshot_id",
    "version_id",
    "url",
    "captured_at",
    "page_updated",
    "area",
    "municipality",
    "section",
    "survey_year",
    "survey_year_basis",
    "position",
    "national_statement",
    "national_percent",
    "local_answer",
    "local_status",
    "local_value",
    "flags",
    # the table and card layouts (issue 22)
    "national_comparison",
    "entity_kind",
    "entity",
    "national_measure",
    "national_value",
    "comparison",
)
#: Carried from the latest snapshot into `observations` as they are (not compared).
LAYOUT_CARRIED = ("national_measure", "national_value", "comparison", "national_comparison")
#: The `pages` columns `changes` reads: every capture of a page in time order, recaptures
#: included (they carry no findings of their own: their version's are theirs).
CAPTURE_COLUMNS = ("snapshot_id", "url", "captured_at", "version_id")
_NO_YEAR = 9999
#: String columns whose values repeat (a page captured 50 times prints the same bullets 50
#: times): held as polars Categoricals, each distinct text stored once. At 150,000
#: snapshots this keeps the findings frame a third of its size as plain strings.
REPEATED = (
    "snapshot_id",
    "version_id",
    "url",
    "area",
    "municipality",
    "section",
    "survey_year_basis",
    "national_statement",
    "local_answer",
    "local_status",
)
_CAT = pl.Categorical
_DIGITS = re.compile(r"\d")
#: A snapshot's findings over time: when seen (unknown first), then snapshot, then order on
#: the page. Every "first" and "latest" below is in this order.
_TIME_ORDER = ["seen", "snapshot_id", "position"]


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
    #: normalised indicator label -> "higher_is_better" / "lower_is_better" ([directions])
    directions: dict[str, str] = field(default_factory=dict)
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
    # [directions]: whether a higher figure is better, per indicator. Applied here, when
    # observations are derived, not by the parser: editing it changes the file's sha256,
    # which rebuilds the derived tables in full (a re-link), with no re-parse.
    directions = data.get("directions", {})
    if not isinstance(directions, dict):
        raise OverridesError(f"{path}: [directions] must be a table of label = direction")
    for label, direction in directions.items():
        if direction not in DIRECTIONS:
            raise OverridesError(
                f"{path}: [directions] {label!r} = {direction!r}: use one of {list(DIRECTIONS)}"
            )
        overrides.directions[normalize_label(label)] = direction
    return overrides


def findings_frame(findings: pa.Table) -> pl.DataFrame:
    """Findings as the derivations read them, plus `seen` (the capture date, else the date
    the page printed), `page` (`flows.sources.page_key`: the page a snapshot is of) and
    `area_key` (the area, "" when unknown).

    `national_percent` is turned into the question's own (positive) sense here, once, so
    every derivation compares one series: a page that prints "Däremot har 4 av 5 kommuner
    inte en aktuell rutin ..." (80, flag national_share_negated) states that 20 percent
    have one, and the next year's "25 procent av kommunerna har en aktuell rutin ..." must
    read as a rise from 20, not a fall from 80. The printed figure is kept in
    `national_percent_printed`, the national flags in `national_flags`."""
    frame = pl.from_arrow(findings.select(list(COLUMNS_USED)))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col(REPEATED).cast(_CAT))
    pages = {url: page_key(url) for url in frame["url"].unique().drop_nulls().to_list()}
    printed = pl.col("national_percent")
    negated = pl.col("flags").list.contains("national_share_negated").fill_null(False)
    return frame.with_columns(
        seen=pl.coalesce(pl.col("captured_at").dt.date(), pl.col("page_updated")),
        page=pl.col("url").replace_strict(pages, return_dtype=pl.String).cast(_CAT),
        area_key=pl.col("area").fill_null("").cast(_CAT),
        national_percent_printed=printed,
        # rounded: 100 - 33.3 is 66.69999999999999 in binary floating point
        national_percent=pl.when(negated).then((100.0 - printed).round(6)).otherwise(printed),
        national_flags=pl.col("flags").list.set_intersection(pl.lit(list(NATIONAL_FLAGS))),
        # the entity whose figure it is: a county card names its county, every other
        # finding is its municipality's
        entity=pl.coalesce(
            pl.col("entity").cast(pl.String), pl.col("municipality").cast(pl.String)
        ),
    ).drop("flags")


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


def with_normalized(frame: pl.DataFrame) -> pl.DataFrame:
    """`normalized_statement` added: normalised once per distinct statement."""
    normalized = _normalizer()
    mapping = {text: normalized(text) for text in frame["national_statement"].unique().to_list()}
    return frame.with_columns(
        normalized_statement=pl.col("national_statement")
        .replace_strict(mapping, return_dtype=pl.String)
        .cast(_CAT)
    )


#: One row per (area, normalised statement): the indicator it belongs to and how.
LINKING_SCHEMA = {
    "area": pl.String,
    "normalized_statement": pl.String,
    "indicator_id": pl.String,
    "link_method": pl.String,
    "link_score": pl.Float64,
    "linked_to": pl.String,
}


def link_indicators(
    frame: pl.DataFrame, previous_ids: dict[tuple[str, str], str], overrides: Overrides
) -> pl.DataFrame:
    """The linking of every (area, normalised statement) of `frame` (see LINKING_SCHEMA).

    `previous_ids` maps (area, normalised statement) to its id in the previous release: a
    group keeps the id its statements had, so ids stay stable across releases.
    """
    occurrences = (
        frame.lazy()
        .group_by("area_key", "normalized_statement")
        .agg(
            first_year=pl.col("survey_year").min().fill_null(_NO_YEAR),
            # where it was printed: two bullets of one block are two questions
            places=pl.concat_str(
                "snapshot_id", pl.col("section").fill_null(""), separator="\x1f"
            ).unique(),
        )
        .sort("area_key", "normalized_statement")
        .collect()
    )
    out: dict[str, list] = {name: [] for name in LINKING_SCHEMA}
    taken: set[str] = set()
    by_area = itertools.groupby(occurrences.iter_rows(), key=lambda row: row[0])
    for area, members in by_area:
        links = link_statements(
            [
                Occurrence(normalized, year, frozenset(places))
                for _, normalized, year, places in members
            ],
            same=overrides.same.get(area, ()),
            different=overrides.different.get(area, ()),
        )
        texts_of: dict[int, list[str]] = defaultdict(list)
        founder_of: dict[int, str] = {}
        for link in links.values():
            texts_of[link.group].append(link.normalized)
            if link.linked_to == link.normalized:
                founder_of[link.group] = link.normalized
        id_of_group: dict[int, str] = {}
        for group in sorted(texts_of):
            earlier = Counter(
                previous_ids[(area, n)] for n in texts_of[group] if (area, n) in previous_ids
            )
            reused = next((i for i, _ in earlier.most_common() if i not in taken), None)
            founder = founder_of.get(group, min(texts_of[group]))
            new_id = "I" + hashlib.sha256(f"{area}\x1f{founder}".encode()).hexdigest()[:12]
            id_of_group[group] = reused or new_id
            taken.add(id_of_group[group])
        for link in links.values():
            for name, value in zip(
                LINKING_SCHEMA,
                (area, link.normalized, id_of_group[link.group], link.method, link.score,
                 link.linked_to),
                strict=True,
            ):  # fmt: skip
                out[name].append(value)
    return pl.DataFrame(out, schema=LINKING_SCHEMA)


def apply_linking(frame: pl.DataFrame, linking: pl.DataFrame) -> pl.DataFrame:
    """Every finding with its `indicator_id` and `link_method`."""
    return frame.join(
        linking.select(
            pl.col("area", "normalized_statement").cast(_CAT), "indicator_id", "link_method"
        ),
        left_on=["area_key", "normalized_statement"],
        right_on=["area", "normalized_statement"],
        how="left",
    )


#: Bases of a year the page itself dates: what an undated finding may be matched to.
DATED_BASES = ["heading", "stated_year", "page_title"]
#: Bases read from dates (page or capture) or a comparison: weaker than what the text says.
DATE_BASES = ["page_updated", "page_published", "captured_at", "comparison_year"]
_BASIS_RANK = {basis: rank for rank, basis in enumerate(RESOLVED_YEAR_BASES)}


def resolve_survey_years(frame: pl.DataFrame) -> pl.DataFrame:
    """Give findings whose page could not tell their year the year of a dated section
    elsewhere in the archive with the same question, wording and national figure.

    The 2020 version of a page keeps "2019 års resultat: 22 procent ..."; an earlier
    capture showed the same statement, word for word and figure for figure, under an
    undated "Årets resultat". Only an unambiguous match counts (one year for that
    wording and figure), and never one from the same snapshot: a page does not print
    the same question twice for one year. `survey_year` and `survey_year_basis` are
    replaced by the resolved ones.
    """
    frame = _same_text_on_later_captures(frame)
    key = ["indicator_id", "normalized_statement", "national_percent"]
    year, basis = pl.col("survey_year"), pl.col("survey_year_basis")
    dated = (
        frame.filter(
            year.is_not_null() & basis.is_in(DATED_BASES) & pl.col("national_percent").is_not_null()
        )
        .group_by(key)
        .agg(
            _years=year.n_unique(),
            _year=year.first(),
            _snapshots=pl.col("snapshot_id").n_unique(),
            _snapshot=pl.col("snapshot_id").first(),
        )
    )
    matched = (
        year.is_null()
        & (pl.col("_years") == 1)
        & ((pl.col("_snapshots") >= 2) | (pl.col("_snapshot") != pl.col("snapshot_id")))
    ).fill_null(False)
    return (
        frame.join(dated, on=key, how="left")
        .with_columns(
            survey_year=pl.when(matched).then(pl.col("_year")).otherwise(year),
            survey_year_basis=pl.when(matched)
            .then(pl.lit("matched_national_figure"))
            .otherwise(basis)
            .cast(_CAT),
        )
        .drop("_years", "_year", "_snapshots", "_snapshot")
    )


def _latest_survey_year(column: str) -> pl.Expr:
    """`parsers.years.latest_survey_year` of a date column: results come out in spring,
    so January or February of Y shows Y-1 at the latest."""
    day = pl.col(column)
    return (day.dt.year() - (day.dt.month() < 3).cast(pl.Int32)).cast(pl.Int32)


def _same_text_on_later_captures(frame: pl.DataFrame) -> pl.DataFrame:
    """One bullet printed unchanged on several captures of a page is one survey's result.

    A page captured in September 2020 and again, unchanged, in September 2021 (no
    update date, or an update that changed something else) is dated 2020 and 2021 by
    the calendar; the statement was already there in 2020, so 2021 is impossible. Years
    read from dates that exceed what the earliest capture of the same text allows take
    the earliest capture's year; with no such year they are a conflict (null). Findings
    the page could not date are left to the match by figure.
    """
    group = ["page", "national_statement", "national_percent"]
    year = pl.col("survey_year")
    bound = pl.col("_bound").min()  # the latest year any capture of the text can show
    groups = (
        frame.lazy()
        .with_columns(
            _bound=pl.min_horizontal(
                _latest_survey_year("captured_at"), _latest_survey_year("page_updated")
            )
        )
        .sort(_TIME_ORDER, nulls_last=False, maintain_order=True)
        .group_by(group)
        .agg(
            _snapshots=pl.col("snapshot_id").n_unique(),
            _group_bound=bound,
            _earliest=year.filter(year.is_not_null() & (year <= bound)).first(),
        )
        .filter((pl.col("_snapshots") >= 2) & pl.col("_group_bound").is_not_null())
        .collect()
    )
    if groups.is_empty():
        return frame
    too_late = (
        year.is_not_null()
        & pl.col("survey_year_basis").is_in(DATE_BASES)
        & (year > pl.col("_group_bound"))
    ).fill_null(False)
    return (
        frame.join(groups, on=group, how="left", nulls_equal=True)
        .with_columns(
            survey_year=pl.when(too_late).then(pl.col("_earliest")).otherwise(year),
            survey_year_basis=pl.when(too_late & pl.col("_earliest").is_not_null())
            .then(pl.lit("matched_national_figure"))
            .when(too_late)
            .then(pl.lit("conflict"))
            .otherwise(pl.col("survey_year_basis"))
            .cast(_CAT),
        )
        .drop("_snapshots", "_group_bound", "_earliest")
    )


def national_figures_by_year(frame: pl.DataFrame) -> pl.DataFrame:
    """Every distinct national percent of each (indicator, survey year), oldest first."""
    return (
        frame.lazy()
        .filter(pl.col("survey_year").is_not_null() & pl.col("national_percent").is_not_null())
        .sort(_TIME_ORDER, nulls_last=False, maintain_order=True)
        .group_by("indicator_id", "survey_year", maintain_order=True)
        .agg(national_percent_all_values=pl.col("national_percent").unique(maintain_order=True))
        .collect()
    )


def judge_directions(frame: pl.DataFrame, directions: dict[str, str] | None) -> pl.DataFrame:
    """`national_comparison` better/worse from `comparison` higher/lower where the
    indicator's direction is declared (indicator_overrides.toml [directions]) and the page
    printed no judgement: 7,3 against 6,8 is worse for "olämpliga läkemedel" and better
    for "mycket nöjda", and a table does not say which."""
    if not directions:
        return frame
    todo = (
        frame.filter(pl.col("comparison").is_not_null() & pl.col("national_comparison").is_null())
        .select(pl.col("national_statement").cast(pl.String), "comparison")
        .unique()
    )
    verdicts = pl.DataFrame(
        [(s, c, judged(c, s, directions)) for s, c in todo.iter_rows()],
        schema={"national_statement": pl.String, "comparison": pl.String, "_judged": pl.String},
        orient="row",
    )
    return (
        frame.with_columns(_statement=pl.col("national_statement").cast(pl.String))
        .join(
            verdicts.rename({"national_statement": "_statement"}),
            on=["_statement", "comparison"],
            how="left",
            nulls_equal=False,
        )
        .with_columns(national_comparison=pl.coalesce("national_comparison", "_judged"))
        .drop("_statement", "_judged")
    )


def build_observations(
    frame: pl.DataFrame,
    directions: dict[str, str] | None = None,
    national: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per (entity, indicator, survey year), over every snapshot: a county's
    observation never mixes with a municipality's (`entity_kind`, `entity` in the key).

    `national`: the national figures by year of the whole indicators (default: of
    `frame`), for a `frame` that holds only some entities' findings of them."""
    frame = judge_directions(frame, directions)
    if national is None:
        national = national_figures_by_year(frame)
    basis_rank = pl.col("survey_year_basis").replace_strict(
        _BASIS_RANK, default=99, return_dtype=pl.Int32
    )
    observations = (
        frame.lazy()
        .sort(_TIME_ORDER, nulls_last=False, maintain_order=True)
        .group_by("entity_kind", "entity", "municipality", "indicator_id", "survey_year")
        .agg(
            area=pl.col("area").last().fill_null(""),
            **{column: pl.col(column).last() for column in LAYOUT_CARRIED},
            # the strongest evidence any snapshot had for the year
            survey_year_basis=pl.col("survey_year_basis")
            .sort_by(basis_rank, maintain_order=True)
            .first(),
            **{column: pl.col(column).last() for column in OBSERVED},
            national_percent_printed=pl.col("national_percent_printed").last(),
            national_flags=pl.col("national_flags")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort(),
            first_seen=pl.col("seen").min(),
            last_seen=pl.col("seen").max(),
            n_snapshots=pl.col("snapshot_id").n_unique(),
            snapshot_ids=pl.col("snapshot_id").unique(maintain_order=True),
            finding_ids=pl.col("finding_id"),
            **{
                f"{column}_values": pl.col(column).drop_nulls().unique(maintain_order=True)
                for column in OBSERVED
            },
        )
        .with_columns(
            conflict_columns=pl.concat_list(
                pl.when(pl.col(f"{column}_values").list.len() > 1).then(pl.lit(column))
                for column in OBSERVED
            ).list.drop_nulls()
        )
        .join(national.lazy(), on=["indicator_id", "survey_year"], how="left")
        .with_columns(
            conflict=pl.col("conflict_columns").list.len() > 0,
            national_percent_all_values=pl.col("national_percent_all_values").fill_null(
                pl.lit([], dtype=pl.List(pl.Float64))
            ),
        )
        .with_columns(national_conflict=pl.col("national_percent_all_values").list.len() > 1)
        # Ordered by entity first: a nightly replaces the rows of the few entities whose
        # pages changed (`_incremental`), and their rows then sit in a few small files
        # (`storage.CLUSTERED_FILE_BYTES`): the Delta delete rewrites only those.
        .sort("entity_kind", "entity", "indicator_id", "survey_year", nulls_last=False)
        .collect()
    )
    return observations


#: The key of an `observations` row.
OBSERVATION_KEY = ["entity_kind", "entity", "municipality", "indicator_id", "survey_year"]


def observation_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """Observations per indicator of linked findings with resolved years: their distinct
    `OBSERVATION_KEY`s (what `build_observations` makes one row each of)."""
    return frame.select(OBSERVATION_KEY).unique().group_by("indicator_id").agg(
        n_observations=pl.len()
    )


def build_indicators(frame: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """One row per indicator; its wordings in survey-year order, the latest canonical.
    `counts`: `observation_counts` of the indicators."""
    statement = pl.col("normalized_statement")
    return (
        frame.lazy()
        .sort("survey_year", "snapshot_id", "position", nulls_last=False, maintain_order=True)
        .group_by("indicator_id")
        .agg(
            area=pl.col("area").first().fill_null(""),
            canonical_statement=pl.col("national_statement").last(),
            # the statement that founded it (linked exactly), else its earliest
            normalized_statement=pl.coalesce(
                statement.filter(pl.col("link_method") == "exact").first(), statement.first()
            ),
            first_survey_year=pl.col("survey_year").min(),
            last_survey_year=pl.col("survey_year").max(),
            n_wordings=pl.col("national_statement").n_unique(),
            n_findings=pl.len(),
        )
        .join(counts.lazy(), on="indicator_id", how="left")
        .with_columns(pl.col("n_observations").fill_null(0))
        .sort("indicator_id")
        .collect()
    )


def _json_value(column: str) -> pl.Expr:
    """A column's values as JSON, as `json.dumps(value, ensure_ascii=False)` writes them
    (the same escapes; floats as Python prints them within 1e-4 .. 1e16, which holds for
    every percent and count the pages print)."""
    encoded = pl.struct(pl.col(column).alias("v")).struct.json_encode()  # '{"v":<value>}'
    return encoded.str.slice(len('{"v":')).str.strip_suffix("}")


def _json_object(side: str, flags: list[pl.Expr]) -> pl.Expr:
    """`{"column": value, ...}` of the flagged COMPARED columns of one side, as
    `json.dumps` writes a dict (", " and ": " separators)."""
    members = pl.concat_str(
        [
            pl.when(flag).then(pl.lit(f'"{column}": ') + _json_value(f"{column}_{side}"))
            for column, flag in zip(COMPARED, flags, strict=True)
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return pl.lit("{") + members + pl.lit("}")


def build_changes(frame: pl.DataFrame, captures: pa.Table | None = None) -> pl.DataFrame:
    """Added, removed and edited findings between consecutive captures of each page.

    A finding is followed across captures by (indicator, survey year); the same pair
    twice on one page is told apart by its order. `captures` (`CAPTURE_COLUMNS` of
    `pages`) gives every capture of the pages in `frame`, recaptures included: findings
    are held once per version (by its first capture), so a page whose third capture is
    byte-identical to its first (A -> B -> A) shows the change B -> A only through the
    captures. Consecutive captures of one version differ in nothing and give no rows.
    Without `captures`, the captures are those that carry findings.
    """
    rows = frame.sort("snapshot_id", "position").with_columns(
        _year_key=pl.col("survey_year").fill_null(-1)
    )
    rows = rows.with_columns(
        _occurrence=pl.int_range(pl.len()).over("version_id", "indicator_id", "_year_key")
    )
    versions = rows.group_by("version_id").agg(
        pl.col("snapshot_id", "page", "url", "area", "municipality", "page_updated", "seen").first()
    )
    if captures is None:
        sequence = versions.select("snapshot_id", "version_id", "page", "url", "area",
                                   "municipality", "seen")  # fmt: skip
    else:
        taken = pl.from_arrow(captures.select(list(CAPTURE_COLUMNS)))
        assert isinstance(taken, pl.DataFrame)
        # Only captures of versions with findings, as before recaptures existed: a page
        # that lost every bullet (or failed) is no step in its sequence.
        sequence = taken.select(
            pl.col("snapshot_id").cast(pl.String), pl.col("version_id").cast(pl.String),
            pl.col("url").cast(pl.String), "captured_at",
        ).join(
            versions.select(pl.col("version_id").cast(pl.String), "page", "area",
                            "municipality", "page_updated"),
            on="version_id",
        ).select(
            "snapshot_id", "version_id", "page", "url", "area", "municipality",
            seen=pl.coalesce(pl.col("captured_at").dt.date(), pl.col("page_updated")),
        )  # fmt: skip
    snapshots = (
        sequence.with_columns(pl.col("snapshot_id", "version_id").cast(pl.String))
        .sort("page", "seen", "snapshot_id", nulls_last=False)
        .with_columns(
            from_snapshot_id=pl.col("snapshot_id").shift(1).over("page"),
            from_version_id=pl.col("version_id").shift(1).over("page"),
            from_seen=pl.col("seen").shift(1).over("page"),
        )
        .filter(
            pl.col("from_snapshot_id").is_not_null()
            & (pl.col("from_version_id") != pl.col("version_id"))
        )
        .with_columns(_pair=pl.int_range(pl.len()))
        .rename({"snapshot_id": "to_snapshot_id", "seen": "to_seen", "version_id": "to_version_id"})
    )
    key = ["indicator_id", "_year_key", "_occurrence"]
    kept = ["finding_id", "position", *COMPARED]

    def side(version: str, suffix: str) -> pl.LazyFrame:
        return (
            snapshots.lazy()
            .select(pl.col("to_snapshot_id"), pl.col(version).alias("_version"))
            .join(
                rows.lazy().select(pl.col("version_id").cast(pl.String), *key, *kept),
                left_on="_version",
                right_on="version_id",
            )
            .select("to_snapshot_id", *key, *(pl.col(c).alias(f"{c}_{suffix}") for c in kept))
        )

    before, after = pl.col("finding_id_before"), pl.col("finding_id_after")
    kind = (
        pl.when(before.is_null())
        .then(pl.lit("added"))
        .when(after.is_null())
        .then(pl.lit("removed"))
        .otherwise(pl.lit("edited"))
    )
    edited = pl.col("change_kind") == "edited"
    flags = [~edited | pl.col(f"{c}_before").ne_missing(pl.col(f"{c}_after")) for c in COMPARED]
    return (
        side("from_version_id", "before")
        .join(
            side("to_version_id", "after"), on=["to_snapshot_id", *key], how="full", coalesce=True
        )
        .with_columns(change_kind=kind)
        .with_columns(
            columns_changed=pl.concat_list(
                pl.when(flag).then(pl.lit(c)) for c, flag in zip(COMPARED, flags, strict=True)
            ).list.drop_nulls()
        )
        .filter(pl.col("columns_changed").list.len() > 0)
        .with_columns(
            before=pl.when(before.is_not_null()).then(_json_object("before", flags)),
            after=pl.when(after.is_not_null()).then(_json_object("after", flags)),
            survey_year=pl.when(pl.col("_year_key") >= 0).then(pl.col("_year_key")),
            local_status_flip=edited
            & pl.col("local_status_before").ne_missing(pl.col("local_status_after")),
            national_changed=edited
            & pl.col("national_percent_before").ne_missing(pl.col("national_percent_after")),
            # a pair's rows: the earlier snapshot's findings in page order, then the new ones
            _new=before.is_null(),
            _at=pl.coalesce("position_before", "position_after"),
        )
        .join(snapshots.lazy().drop("from_version_id", "to_version_id"), on="to_snapshot_id")
        .sort("_pair", "_new", "_at")
        .collect()
    )


def _arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame as an Arrow table of a declared schema (storage validates it)."""
    frame = frame.select(schema.names).with_columns(
        pl.col(_CAT).cast(pl.String), pl.col(pl.List(_CAT)).cast(pl.List(pl.String))
    )
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)


def derive(
    findings: pa.Table,
    previous_ids: dict[tuple[str, str], str],
    overrides: Overrides,
    captures: pa.Table | CaptureReader | Callable[[], pa.Table | None] | None = None,
) -> Iterator[tuple[str, pa.Table]]:
    """Every derived table of a release, from all of its findings and (for `changes`) all
    of its captures (or a function reading them when `changes` needs them): (table,
    Arrow table), each table once, built and handed over one at a time.

    Each step holds less at once: the Arrow findings are not kept once their frame is
    built, the linking once its table is handed over, and freed memory goes back to the
    system after each table (the peak is the largest step, not the sum of what the
    allocators keep)."""
    pool = pa.default_memory_pool()
    frame = with_normalized(findings_frame(findings))
    del findings
    linking = link_indicators(frame, previous_ids, overrides)
    frame = resolve_survey_years(apply_linking(frame, linking))
    yield "indicator_links", _links(frame, linking)
    del linking
    pool.release_unused()
    for name, table in _derive_linked(frame, frame, captures, overrides.directions):
        yield name, table
        del table
        pool.release_unused()


def _links(frame: pl.DataFrame, linking: pl.DataFrame) -> pa.Table:
    links = (
        frame.select(
            "finding_id",
            "indicator_id",
            "area_key",
            "normalized_statement",
            resolved_survey_year="survey_year",
            resolved_survey_year_basis="survey_year_basis",
        )
        .join(
            linking.select(
                pl.col("area", "normalized_statement").cast(_CAT),
                "link_method",
                "link_score",
                "linked_to",
            ),
            left_on=["area_key", "normalized_statement"],
            right_on=["area", "normalized_statement"],
        )
        .rename({"area_key": "area"})
        .sort("indicator_id", "finding_id")
    )
    return _arrow(links, INDICATOR_LINKS)


def _derive_linked(
    frame: pl.DataFrame,
    pages: pl.DataFrame,
    captures: pa.Table | CaptureReader | Callable[[], pa.Table | None] | None = None,
    directions: dict[str, str] | None = None,
    entities: list[str] | None = None,
    national: pl.DataFrame | None = None,
) -> Iterator[tuple[str, pa.Table]]:
    """Observations and indicators of linked findings whose years are resolved, and the
    changes of `pages` (every finding of the pages to compare; `captures`: every capture
    of those pages, or a function reading them when `changes` needs them). With
    `entities`, only those entities' observations (`frame` still
    holds every finding of its indicators: the national figures and counts need them).
    `national`: `national_figures_by_year(frame)` when the caller has it."""
    if national is None:
        national = national_figures_by_year(frame)
    observed = frame if entities is None else frame.filter(pl.col("entity").is_in(entities))
    observations = build_observations(observed, directions, national)
    del observed
    indicators = build_indicators(frame, observation_counts(frame))
    yield "observations", _arrow(observations, OBSERVATIONS)
    del observations
    yield "indicators", _arrow(indicators, INDICATORS)
    del indicators
    # `changes` in parts of whole pages (a page's pairs never span two parts): a full
    # derivation held every page's pairs and their joins at once, the peak of a release
    # (792 MB at 30,000 captures); `flows.storage` appends each part as it comes.
    if callable(captures):
        captures = captures()
    for part, part_captures in page_parts(pages, captures, CHANGES_PART_PAGES):
        yield "changes", _arrow(build_changes(part, part_captures), CHANGES)


#: Pages per part of `changes` (see `_derive_linked`): each part is one Delta append, so
#: a nightly's few touched pages are one part, a full derivation a few.
CHANGES_PART_PAGES = 1000
#: Captures per part of `changes` when they are read part by part (`CaptureReader`): a
#: part of 1,000 pages held ~440,000 captures at 1,000,000 (a page recaptured ~450
#: times), and its joins and sort added ~330 MB to the run's peak.
CHANGES_PART_CAPTURES = 100_000


@dataclass(frozen=True)
class CaptureReader:
    """Captures read part by part (`page_parts`), never all rows at once: `counts()` the
    number of captures of each URL (None: unknown), `rows(urls)` the `CAPTURE_COLUMNS`
    rows of those URLs (every capture when None). At 1,000,000 captures every row held
    at once, and a string copy of its URL column per part, were ~540 MB of a full
    derivation's peak."""

    counts: Callable[[], dict[str, int] | None]
    rows: Callable[[set[str] | None], pa.Table | None]


def page_parts(
    frame: pl.DataFrame,
    captures: pa.Table | CaptureReader | None,
    size: int,
    max_captures: int | None = None,
) -> Iterator[tuple[pl.DataFrame, pa.Table | None]]:
    """`frame` (findings with a `page` column) and `captures` (with `url`, or a reader of
    them) split into parts of at most `size` pages each, every row of a page in the same
    part; pages that only `captures` names (no findings) go nowhere, as in
    `build_changes`. Read by a `CaptureReader`, a part also holds at most `max_captures`
    (default `CHANGES_PART_CAPTURES`) captures, unless one page alone has more."""
    if max_captures is None:
        max_captures = CHANGES_PART_CAPTURES
    pages = frame["page"].unique().drop_nulls().sort().to_list()
    if isinstance(captures, CaptureReader):
        counts = captures.counts()
        if counts is None or (len(pages) <= size and sum(counts.values()) <= max_captures):
            yield from page_parts(frame, captures.rows(None), size)  # one part, or unknown
            return
        by_page: dict[str, set[str]] = {}
        for url in counts:
            by_page.setdefault(page_key(url), set()).add(url)
        for chunk in _page_chunks(pages, by_page, counts, size, max_captures):
            wanted = set().union(*(by_page.get(page, set()) for page in chunk))
            yield frame.filter(pl.col("page").is_in(chunk)), captures.rows(wanted)
        return
    if len(pages) <= size:
        yield frame, captures
        return
    by_url: dict[str, str] = {}
    if captures is not None:
        urls = pc.unique(captures.column("url").drop_null().cast(pa.string())).to_pylist()
        by_url = {url: page_key(url) for url in urls}
    for start in range(0, len(pages), size):
        chunk = set(pages[start : start + size])
        part = frame.filter(pl.col("page").is_in(sorted(chunk)))
        if captures is None:
            yield part, None
            continue
        wanted = pa.array(sorted(u for u, k in by_url.items() if k in chunk), pa.string())
        url = captures.column("url").cast(pa.string())
        yield part, captures.filter(pc.is_in(url, value_set=wanted))


def url_counts(urls: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """{url: rows} of a url column (plain or dictionary-encoded); nulls left out."""
    counted = pc.value_counts(urls).flatten()
    values = counted[0].cast(pa.string()).to_pylist()
    counts = zip(values, counted[1].to_pylist(), strict=True)
    return {url: n for url, n in counts if url is not None}


def _page_chunks(
    pages: list[str], by_page: dict[str, set[str]], counts: dict[str, int], size: int,
    max_captures: int,
) -> Iterator[list[str]]:
    """`pages` in order, cut into runs of at most `size` pages and `max_captures` captures
    (a page with more is a run of its own)."""
    chunk: list[str] = []
    held = 0
    for page in pages:
        n_captures = sum(counts[url] for url in by_page.get(page, ()))
        if chunk and (len(chunk) == size or held + n_captures > max_captures):
            yield chunk
            chunk, held = [], 0
        chunk.append(page)
        held += n_captures
    if chunk:
        yield chunk


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

    def captures(self, urls: set[str] | None = None) -> pa.Table | None:
        """`CAPTURE_COLUMNS` of every capture (`pages` row), or of those of `urls`; None
        when not known (`changes` then compares the captures that carry findings)."""
        return None

    def new_captures(self) -> pa.Table | None:  # captures this run added; None: unknown
        return None

    def capture_urls(self) -> list[str] | None:
        """The distinct urls of every capture (one narrow column); None when not known."""
        counts = self.capture_url_counts()
        return None if counts is None else list(counts)

    def capture_url_counts(self) -> dict[str, int] | None:
        """The number of captures of each url (one narrow column); None when not known."""
        captures = self.captures(None)
        if captures is None:
            return None
        return url_counts(captures.column("url"))

    def previous_links(self, columns: list[str]) -> pa.Table | None:  # None: no such table
        raise NotImplementedError


@dataclass
class Derivation:
    """How a release updates the derived tables.

    `mode` "full": `tables` replace every derived table. "incremental": for each table in
    `replace`, the rows whose columns hold one of the values of every condition are
    deleted, then `tables` are appended; tables not named keep their rows.
    """

    mode: str
    reason: str
    tables: Iterator[tuple[str, pa.Table]]
    #: table -> conditions (column, values), all of which a replaced row meets; a
    #: condition with no values replaces nothing.
    replace: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)
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
        return _incremental(inputs, previous, overrides.directions)
    except _Fallback as why:
        return _full(inputs, overrides, str(why), previous)


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


def _full(
    inputs: DerivationInputs,
    overrides: Overrides,
    reason: str,
    previous: pa.Table | None = None,
) -> Derivation:
    if previous is None:
        previous = inputs.previous_links(["area", "normalized_statement", "indicator_id"])
    previous_ids: dict[tuple[str, str], str] = {}
    if previous is not None:
        ids = pl.from_arrow(previous.select(["area", "normalized_statement", "indicator_id"]))
        assert isinstance(ids, pl.DataFrame)
        previous_ids = {(a, n): i for a, n, i in ids.unique().iter_rows()}

    def tables() -> Iterator[tuple[str, pa.Table]]:
        pa.default_memory_pool().release_unused()  # what parsing freed, before the reads
        # The findings passed on, not held here (`derive` lets them go once read); every
        # capture (150,000 rows at 150,000 captures) read only for `changes`, after
        # observations and indicators are written (the peak of a full derivation).
        yield from derive(
            inputs.all_findings(list(COLUMNS_USED)), previous_ids, overrides,
            CaptureReader(inputs.capture_url_counts, inputs.captures),
        )  # fmt: skip

    return Derivation("full", reason, tables())


def _incremental(
    inputs: DerivationInputs, previous: pa.Table, directions: dict[str, str] | None = None
) -> Derivation:
    # No links from the overrides here: changed overrides always rebuild in full
    # (`full_derivation_reason`); their unchanged directions still judge the new rows.
    new = findings_frame(inputs.new_findings(list(COLUMNS_USED)))
    # A recapture brings no finding but may still be a change: A -> B, then A again.
    added = inputs.new_captures()
    recaptured = set()
    if added is not None and added.num_rows:
        # Cast before dropping nulls: a dictionary-encoded column can hold a null in its
        # dictionary behind a valid index (a quarantined record has no url), which
        # drop_null on the indices keeps.
        urls_added = pc.unique(added.column("url").cast(pa.string()).drop_null()).to_pylist()
        recaptured = {page_key(url) for url in urls_added if url is not None}
    if new.is_empty() and not recaptured:
        return Derivation("incremental", "no new findings", iter(()))
    links = pl.from_arrow(previous)
    assert isinstance(links, pl.DataFrame)
    # The previous release's linking, one row per (area, normalised statement).
    linking = links.select(list(LINKING_SCHEMA)).unique()
    new = apply_linking(with_normalized(new), linking)
    unlinked = new.filter(pl.col("indicator_id").is_null())
    if not unlinked.is_empty():
        raise _Fallback(f"a new wording in {unlinked['area'][0] or 'an unnamed area'}")
    doubled = (
        new.group_by("snapshot_id", "section", "indicator_id")
        .agg(pl.col("normalized_statement").n_unique(), pl.col("url").first())
        .filter(pl.col("normalized_statement") > 1)
    )
    if not doubled.is_empty():
        raise _Fallback(f"two wordings of one question in one section of {doubled['url'][0]}")

    touched = new["indicator_id"].unique()
    page_keys = set(new["page"].to_list()) | recaptured
    urls = {url for url in inputs.finding_urls() if page_key(url) in page_keys}
    old_ids = set(
        links.filter(pl.col("indicator_id").is_in(touched.implode()))["finding_id"].to_list()
    )
    scope = _with_links(
        findings_frame(inputs.findings(list(COLUMNS_USED), old_ids, urls)), links, new, touched
    )
    recomputed = scope.filter("_recomputed")  # every finding of the touched indicators
    # The matcher takes statements oldest first: a known wording seen with an earlier
    # year than before could have founded its indicator.
    first_year = (
        recomputed.filter(~pl.col("_new"))
        .group_by("area_key", "normalized_statement")
        .agg(_first=pl.col("survey_year").min().fill_null(_NO_YEAR))
    )
    earlier = new.join(first_year, on=["area_key", "normalized_statement"]).filter(
        pl.col("survey_year").fill_null(_NO_YEAR) < pl.col("_first")
    )
    if not earlier.is_empty():
        area = earlier["area"][0] or "an area"
        raise _Fallback(f"an earlier year for a known wording in {area}")

    if not recomputed.is_empty():
        recomputed = resolve_survey_years(recomputed)
    # A finding whose resolved year moved changes its page's changes too (an undated Mora
    # bullet that takes a year when a dated Växjö page with the same figure arrives).
    moved = set(
        recomputed.filter(
            ~pl.col("_new") & pl.col("survey_year").ne_missing(pl.col("_previous_year"))
        )["page"].to_list()
    )
    scope = pl.concat([recomputed, scope.filter(~pl.col("_recomputed"))])
    if moved - page_keys:
        extra_urls = {url for url in inputs.finding_urls() if page_key(url) in moved - page_keys}
        extra = findings_frame(inputs.findings(list(COLUMNS_USED), set(), extra_urls)).filter(
            ~pl.col("finding_id").is_in(scope["finding_id"].implode())
        )
        # Not of a recomputed indicator: those findings are all in scope already.
        scope = pl.concat([scope, _with_links(extra, links, new, touched)])
        page_keys |= moved
    pages = scope.filter(pl.col("page").is_in(sorted(page_keys)))
    captures = _captures_of(inputs, page_keys)
    # Every capture of a touched page may start or end a pair: a backfilled older capture
    # splits one, a recapture may revert one.
    snapshots = sorted(
        set(pages["snapshot_id"].cast(pl.String).to_list())
        | set(captures.column("snapshot_id").cast(pa.string()).to_pylist() if captures else ())
    )
    # Every `changes` row of a touched page is rebuilt, so its rows go by the page's URLs
    # (a few spellings per page) rather than by the ids of its captures, which grow with
    # every recapture: 20 pages at 150,000 captures had 1,097 capture ids, a 0.40 s
    # delete, and 20 URLs 0.14 s. Without the captures (`_captures_of` is None) a
    # page's earlier captures are unknown, and the ids are all there is.
    changes_replaced = [("to_snapshot_id", snapshots)]
    if captures is not None:
        page_urls = set(pages["url"].cast(pl.String).drop_nulls().to_list())
        page_urls |= set(captures.column("url").cast(pa.string()).drop_null().to_pylist())
        changes_replaced = [("url", sorted(page_urls))]
    indicators = sorted(touched.to_list())

    # What the release changes of the touched indicators: the new findings' links and
    # observations, and those of findings whose resolved year (or its basis) moved. Every
    # other row of theirs is what the previous release holds, and stays where it is.
    changed = recomputed.filter(
        pl.col("_new")
        | pl.col("survey_year").ne_missing(pl.col("_previous_year"))
        | pl.col("survey_year_basis")
        .cast(pl.String)
        .ne_missing(pl.col("_previous_basis").cast(pl.String))
    )
    relinked = sorted(changed.filter(~pl.col("_new"))["finding_id"].to_list())
    national = national_figures_by_year(recomputed)
    entities = _entities_to_recompute(recomputed, changed, national)
    observations_replaced = [("indicator_id", indicators)]
    if entities is not None:
        observations_replaced.append(("entity", entities))

    def tables() -> Iterator[tuple[str, pa.Table]]:
        yield "indicator_links", _links(changed, linking)
        yield from _derive_linked(recomputed, pages, captures, directions, entities, national)

    return Derivation(
        "incremental",
        plural(new.height, "new finding")
        + (f", {plural(added.num_rows, 'new capture')}" if added is not None else ""),
        tables(),
        replace={
            "indicator_links": [("finding_id", relinked)],
            "observations": observations_replaced,
            "indicators": [("indicator_id", indicators)],
            "changes": changes_replaced,
        },
    )


def _entities_to_recompute(
    recomputed: pl.DataFrame, changed: pl.DataFrame, national: pl.DataFrame
) -> list[str] | None:
    """The entities whose observations of the touched indicators a release recomputes:
    those of the `changed` findings (new, or a resolved year that moved), or None for
    every entity. `national`: `national_figures_by_year(recomputed)`.

    An observation row is a function of its own findings and of its indicator's national
    figures for its year (`national_percent_all_values`, `national_conflict`). An entity
    without a changed finding keeps its rows, unless a national figure set of one of
    its (indicator, year)s changed: a new figure, or an old one now first seen earlier
    (the list is oldest first), changes every entity's row of that year, so those
    entities are recomputed too. An entity that is null recomputes whole indicators."""
    if changed.is_empty():
        return []
    key = ["indicator_id", "survey_year"]
    before = national_figures_by_year(
        recomputed.filter(~pl.col("_new")).with_columns(survey_year=pl.col("_previous_year"))
    )
    # (indicator, year)s whose figures differ; one only `national` has is new, and every
    # finding of it is a changed one already.
    moved = national.join(before, on=key, how="inner", suffix="_before").filter(
        pl.col("national_percent_all_values")
        != pl.col("national_percent_all_values_before")
    )
    entities = pl.concat(
        [
            changed.select("entity"),
            recomputed.join(moved.select(key), on=key, how="semi").select("entity"),
        ]
    )["entity"]
    if entities.null_count():
        return None
    return sorted(entities.unique().to_list())


def _captures_of(inputs: DerivationInputs, page_keys: set[str]) -> pa.Table | None:
    """Every capture of the pages `page_keys`: selected by page key, not by the URLs that
    carry findings (an http:// recapture of an https:// page is the same page).

    Only the url column of all captures is read; the rows are read for the touched pages'
    urls alone (a filter the reader pushes down), so a nightly's cost does not grow with
    the number of captures (every capture's rows: 0.11 s at 30,000 captures, the url
    column alone 0.05 s)."""
    distinct = inputs.capture_urls()
    if distinct is None:
        return None
    wanted = {url for url in distinct if page_key(url) in page_keys}
    return inputs.captures(wanted)


def _with_links(
    frame: pl.DataFrame, links: pl.DataFrame, new: pl.DataFrame, touched: pl.Series
) -> pl.DataFrame:
    """Findings with their links: a new finding's from `new`, an older one's from the
    previous release (`links`). `_recomputed` marks the findings of the `touched`
    indicators; the others keep the year the previous release resolved."""
    previous = links.select(
        "finding_id",
        pl.col("indicator_id").alias("_indicator"),
        pl.col("link_method").alias("_method"),
        pl.col("normalized_statement").cast(_CAT).alias("_normalized"),
        pl.col("resolved_survey_year").alias("_previous_year"),
        pl.col("resolved_survey_year_basis").cast(_CAT).alias("_previous_basis"),
    )
    fresh = new.select("finding_id", "indicator_id", "link_method", "normalized_statement")
    frame = (
        frame.join(fresh, on="finding_id", how="left")
        .join(previous, on="finding_id", how="left")
        .with_columns(_new=pl.col("indicator_id").is_not_null())
        .with_columns(
            indicator_id=pl.coalesce("indicator_id", "_indicator"),
            link_method=pl.coalesce("link_method", "_method"),
            normalized_statement=pl.coalesce("normalized_statement", "_normalized"),
        )
        .with_columns(_recomputed=pl.col("indicator_id").is_in(touched.implode()))
    )
    return frame.with_columns(
        survey_year=pl.when("_recomputed").then("survey_year").otherwise("_previous_year"),
        survey_year_basis=pl.when("_recomputed")
        .then("survey_year_basis")
        .otherwise("_previous_basis")
        .cast(_CAT),
    ).drop("_indicator", "_method", "_normalized")
