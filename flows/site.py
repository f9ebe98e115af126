"""`oj report`: a static site of one release, for people to look at: an index (the
release, its citation, coverage, latest changes, data quality), a page per area, a page
per question (the national share over survey years beside each municipality's answer,
every wording, every source snapshot), and a change feed.

It works offline and from the file system: plain HTML and one CSS file with relative
links, charts drawn by Vega-Lite (`altair`) and rendered to inline SVG by `vl-convert`
when the site is built, so no script, font or CDN is fetched when it is viewed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import polars as pl
import vl_convert

from flows import history, outfolder, report, storage
from flows.errors import plural
from flows.outfolder import OutFolderError, OutFolderUnwritable  # noqa: F401 - cli uses them
from flows.package import citation_line
from parsers.numbers import current_level

#: Colours of a local answer (`findings.local_status`), fixed so every chart reads alike.
STATUS_COLOURS = {"yes": "#1a7f37", "partial": "#d4a72c", "no": "#cf222e", "unknown": "#8c959f"}
#: Changes listed on the index; the change feed has them all.
INDEX_CHANGES = 15
#: Source snapshots listed on a question's page, newest first (the rest are counted).
MAX_SOURCES = 500

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 70rem;
       padding: 1rem 1.5rem 3rem; color: #1f2328; }
a { color: #0969da; } h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
nav { font-size: .9rem; margin-bottom: 1rem; } nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cite { background: #f6f8fa; border-left: 4px solid #0969da; padding: .5rem .8rem; }
.muted { color: #57606a; font-size: .85rem; } .charts { display: flex; flex-wrap: wrap;
         gap: 2rem; align-items: flex-start; } .charts svg { max-width: 100%; height: auto; }
.status { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
          margin-right: .3rem; vertical-align: -1px; }
.change { margin: .2rem 0 .8rem; } .before { color: #cf222e; } .after { color: #1a7f37; }
code { font-size: .85rem; } details { margin: .5rem 0; }
/* Page text may hold an unbroken token of any length (a 60,000-character one made a
   question page 1.18 million pixels wide): text breaks anywhere rather than widen. */
h1, h2, h3, p, li, th, td, .cite, .change, details, summary, a {
  overflow-wrap: anywhere; word-break: break-word; }
table { max-width: 100%; }
"""


@dataclass
class Release:
    """Every table of one release, as pandas (the site reads each once)."""

    info: dict[str, Any]
    pages: pd.DataFrame
    findings: pd.DataFrame
    indicators: pd.DataFrame
    links: pd.DataFrame
    observations: pd.DataFrame
    changes: pd.DataFrame
    quality: dict[str, Any]


def load_release(datasets_dir: Path | str, release: int | None) -> Release:
    info = storage.get_release(datasets_dir, release)
    number = info["release"]

    def table(name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return storage.load_table(name, number, datasets_dir, columns)

    return Release(
        info=info,
        pages=table("pages", ["snapshot_id", "url", "captured_at", "municipality", "area",
                              "raw_sha256", "parse_status", "page_updated"]),
        findings=_findings(datasets_dir, number),
        indicators=table("indicators"),
        links=table("indicator_links", ["finding_id", "indicator_id", "resolved_survey_year"]),
        observations=table("observations"),
        changes=_with_release(table("changes"), datasets_dir, number),
        quality=report.quality_counts(datasets_dir, number),
    )  # fmt: skip


def _findings(datasets_dir: Path | str, number: int) -> pd.DataFrame:
    """The findings a question page shows, with their national figure both as printed
    (`national_percent_printed`, every figure in `national_values`) and in the question's
    own sense (`national_percent`), turned by `history.findings_frame`: the one place
    that reads a negated share ("4 av 5 kommuner har inte ...": 80 printed, 20 shown)."""
    columns = list(dict.fromkeys([*history.COLUMNS_USED, "national_values"]))
    arrow = storage.load_arrow("findings", number, datasets_dir, columns)
    frame = history.findings_frame(arrow).select(
        "finding_id", "snapshot_id", pl.col("national_statement").cast(pl.String),
        "national_percent", "national_percent_printed", "national_flags",
        "national_measure", "national_value",
    ).to_pandas()  # fmt: skip
    frame["national_values"] = arrow.column("national_values").to_pylist()
    return frame


def first_releases(
    datasets_dir: Path | str, last: int, snapshot_ids: Iterable[str]
) -> dict[str, int]:
    """Snapshot id -> the first release (up to `last`) whose `pages` held it.

    A backfill publishes old captures in a new release, so a page's dates do not tell
    which release a change came with. Releases only add snapshots, so each id's first
    release is found by halving the range of release numbers: a few reads of the
    `snapshot_id` column however many releases there are."""
    numbers = [int(n) for n in storage.releases(datasets_dir)["release"] if int(n) <= last]
    held: dict[int, set[str]] = {}

    def holds(index: int) -> set[str]:
        if index not in held:
            pages = storage.load_arrow("pages", numbers[index], datasets_dir, ["snapshot_id"])
            held[index] = set(pages.column(0).to_pylist())
        return held[index]

    found: dict[str, int] = {}

    def settle(ids: set[str], low: int, high: int) -> None:
        if low == high:
            found.update(dict.fromkeys(ids, numbers[low]))
            return
        middle = (low + high) // 2
        earlier = ids & holds(middle)
        if earlier:
            settle(earlier, low, middle)
        if ids - earlier:
            settle(ids - earlier, middle + 1, high)

    wanted = set(snapshot_ids)
    if numbers and wanted:
        settle(wanted, 0, len(numbers) - 1)
    return found


def _with_release(changes: pd.DataFrame, datasets_dir: Path | str, last: int) -> pd.DataFrame:
    """`changes` with the release each came with (that of its later snapshot)."""
    of = first_releases(datasets_dir, last, changes["to_snapshot_id"].unique())
    return changes.assign(release=changes["to_snapshot_id"].map(of).astype("Int64"))


def slug(text: str) -> str:
    """A file name for an area: "Barn- och ungdomsvård" -> "barn-och-ungdomsvard"."""
    ascii_text = text.lower().translate(str.maketrans("åäöéü", "aaoeu"))
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "area"


def _e(value: Any) -> str:
    """Escaped text of a cell (`report.format_value`); capture times to the minute."""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return html.escape(report.format_value(value))


def _page(title: str, body: str, depth: int, release: Release) -> str:
    up = "../" * depth
    number = release.info["release"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · oppna-jamforelser release {number}</title>
<link rel="stylesheet" href="{up}style.css"></head>
<body><nav><a href="{up}index.html">Release {number}</a><a href="{up}areas.html">Areas</a>
<a href="{up}changes.html">Changes</a></nav>
{body}
<p class="muted">oppna-jamforelser release {number}, parser {_e(release.info["parser_version"])}.
Built from the published tables; every figure links to the snapshots it came from.</p>
</body></html>
"""


def _table(
    headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: set[int] = frozenset()
) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status(status: Any) -> str:
    if not isinstance(status, str):
        return "–"
    colour = STATUS_COLOURS.get(status, "#ffffff")
    return f'<span class="status" style="background:{colour}"></span>{html.escape(status)}'


def _question_link(indicator_id: str, statement: str, depth: int) -> str:
    up = "../" * depth
    return f'<a href="{up}questions/{indicator_id}.html">{html.escape(statement)}</a>'


# --- charts -----------------------------------------------------------------------------------


#: How a plotted national figure is drawn, by what the page printed: (legend, shape, fill).
#: A figure the chart derived, or chose among several, never looks like one printed as is.
POINT_KINDS = {
    "printed": ("as printed", "circle", "#0969da"),
    "negated": ("100 − the share printed without it", "circle", "white"),
    "several": ("first of several figures printed", "diamond", "white"),
}
#: Flags of a national statement that give no level: such a figure is never plotted.
NO_LEVEL = ("national_range", "national_vague")
#: What the chart's values are: the share in the question's own sense.
Y_TITLE = "% of municipalities that have/do it"


def _kind(flags: Iterable[str]) -> str:
    flags = set(flags)
    if "national_share_negated" in flags:
        return "negated"
    return "several" if "national_several_figures" in flags else "printed"


def national_rows(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per survey year and national statement of a question's findings (columns of
    `_findings` plus `resolved_survey_year`): the figure printed, every figure, the flags,
    the figure in the question's sense, whether it is plotted, and the findings behind it.
    The statement alone decides the figures and flags (the parser reads nothing else)."""
    dated = findings[findings["resolved_survey_year"].notna()]
    rows = []
    for (year, statement), group in dated.groupby(
        ["resolved_survey_year", "national_statement"], sort=True
    ):
        first = group.iloc[0]
        flags = tuple(sorted(first.national_flags))
        measure = _measure_of(first)
        # Only a share of municipalities is drawn on the "% of municipalities" axis: a
        # result table's "Medelvärde riket" of respondents' shares, an index (NKI) or a
        # count is in the table with its measure, never plotted as one (issue 22).
        share = measure == SHARE_OF_MUNICIPALITIES
        sense = first.national_percent if share else None
        printed = first.national_percent_printed if share else _value_of(first)
        rows.append({
            "survey_year": int(year), "statement": statement, "flags": flags,
            "printed": printed, "values": tuple(first.national_values),
            "sense": sense, "kind": _kind(flags), "n": len(group),
            "plotted": share and pd.notna(sense) and not set(flags) & set(NO_LEVEL),
            "measure": measure,
        })  # fmt: skip
    columns = ["survey_year", "statement", "flags", "printed", "values", "sense", "kind", "n",
               "plotted", "measure"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


#: `national_measure` of a figure drawn on the chart's axis (`Y_TITLE`).
SHARE_OF_MUNICIPALITIES = "share_of_municipalities"
#: How a table cell names a national figure's measure.
MEASURE_WORDS = {
    "share_of_municipalities": "% of municipalities",
    "share_of_respondents": "% of respondents",
    "mean": "mean",
    "index": "index",
    "count": "count",
}


def _measure_of(row: Any) -> str | None:
    """A finding's or observation's national measure; a frame from before the column
    existed held shares of municipalities only."""
    measure = getattr(row, "national_measure", SHARE_OF_MUNICIPALITIES)
    return None if measure is None or (isinstance(measure, float) and pd.isna(measure)) else measure


def _value_of(row: Any) -> float | None:
    value = getattr(row, "national_value", None)
    return None if value is None or pd.isna(value) else float(value)


def _entity_of(row: Any) -> str:
    """Whose answer an observation is: the municipality, or the county ("Kronobergs län
    (county)") of a county card."""
    entity = getattr(row, "entity", None)
    name = entity if isinstance(entity, str) else row.municipality
    kind = getattr(row, "entity_kind", "municipality")
    return _e(name) if kind in (None, "municipality") else f"{_e(name)} ({_e(kind)})"


def _national_of(row: Any) -> str:
    """An observation's national figure with its measure: the share of municipalities as
    `_shown_national` shows it, any other measure with its name ("81 (% of respondents)")."""
    measure = _measure_of(row)
    if measure == SHARE_OF_MUNICIPALITIES:
        return _shown_national(row)
    value = _value_of(row)
    if value is None:
        return _e(None)
    return f"{_e(value)} ({html.escape(MEASURE_WORDS.get(measure or '', 'unknown measure'))})"


def question_chart(observations: pd.DataFrame, national: pd.DataFrame) -> str:
    """SVG: the national share over survey years, in the question's own sense (every
    figure of a year, so a disagreement shows; a figure derived from a negated share or
    chosen among several drawn hollow, with a legend), beside each municipality's answer
    per year. `national` is `national_rows` of the question."""
    points = national[national["plotted"]].sort_values("kind", key=lambda k: k.map(
        list(POINT_KINDS).index)).drop_duplicates(["survey_year", "sense"])  # fmt: skip
    points = pd.DataFrame({
        "survey_year": points["survey_year"].astype(int),
        "national_percent": points["sense"].astype(float),
        "figure": points["kind"].map(lambda k: POINT_KINDS[k][0]),
    }).sort_values(["survey_year", "national_percent"])  # fmt: skip
    dated = observations[observations["survey_year"].notna()]
    answers = dated[["municipality", "survey_year", "local_status"]].copy()
    if "entity" in dated:  # a county card's answer is the county's: named as such
        answers["municipality"] = dated["entity"].where(
            dated["entity_kind"] == "municipality", dated["entity"] + " (county)"
        )
    answers["municipality"] = answers["municipality"].fillna("(unknown)")
    answers["local_status"] = answers["local_status"].fillna("unknown")
    answers = answers.astype({"survey_year": int})
    years = sorted({*points["survey_year"], *answers["survey_year"], *national["survey_year"]})
    if not years:
        return '<p class="muted">No survey year is known for this question: nothing to chart.</p>'
    year_axis = alt.X(
        "survey_year:O", title="survey year", sort=years, scale=alt.Scale(domain=years)
    )
    y_axis = alt.Y("national_percent:Q", title=Y_TITLE, scale=alt.Scale(domain=[0, 100]))
    kinds = [POINT_KINDS[k] for k in POINT_KINDS if POINT_KINDS[k][0] in set(points["figure"])]
    legend = [label for label, _, _ in kinds]
    base = alt.Chart(points, title="National share, in the question's own sense")
    line = base.mark_line(color="#0969da").encode(x=year_axis, y=y_axis)
    dots = base.mark_point(filled=True, size=90, stroke="#0969da", strokeWidth=2).encode(
        x=year_axis,
        y=y_axis,
        shape=alt.Shape("figure:N", title="figure", scale=alt.Scale(
            domain=legend, range=[shape for _, shape, _ in kinds])),
        fill=alt.Fill("figure:N", title="figure", scale=alt.Scale(
            domain=legend, range=[fill for _, _, fill in kinds])),
        tooltip=["survey_year:O", "national_percent:Q", "figure:N"],
    )  # fmt: skip
    left = alt.layer(line, dots).properties(width=max(160, 60 * len(years)), height=220)
    n_places = answers["municipality"].nunique()
    right = (
        alt.Chart(answers, title="Local answer by municipality")
        .mark_square(size=140)
        .encode(
            x=year_axis,
            y=alt.Y("municipality:N", title=None, sort="ascending"),
            color=alt.Color(
                "local_status:N",
                title="answer",
                scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
            ),
        )
        .properties(width=max(120, 50 * len(years)), height=max(40, 18 * n_places))
    )
    chart = (
        alt.hconcat(left, right)
        .resolve_scale(color="independent", shape="independent", fill="independent")
        .resolve_legend(color="independent", shape="independent", fill="independent")
        .configure_view(stroke=None)
        .configure_legend(orient="bottom", direction="vertical", labelLimit=320)
    )
    return vl_convert.vegalite_to_svg(chart.to_dict())


def _percent(value: float) -> str:
    return f"{value:g} %"


def _printed_sentence(statement: str) -> str:
    """The sentence of a statement that holds its national figure (the whole statement
    when it has none): a bullet may say two things, as "Fler kommuner har skriftliga ...
    överenskommelser ... Däremot har 4 av 5 kommuner inte en aktuell rutin ..." does."""
    level = current_level(statement)
    if level is None:
        return statement
    start = 0
    for end in re.finditer(r"[.!?](?:\s+|$)", statement):
        if end.end() > level.start:
            return statement[start : end.end()].strip()
        start = end.end()
    return statement[start:].strip()


def _national_note(row: Any, year_values: list[float], conflict: bool) -> str:
    """What a reader must know of one national figure, in words."""
    notes = []
    flags = set(row.flags)
    if "national_share_negated" in flags and pd.notna(row.printed):
        notes.append(
            f"the page printed the share <em>without</em> it ({_percent(row.printed)}); "
            f"shown as the share with it, 100 − {row.printed:g} = {_percent(row.sense)} "
            "(hollow circle)"
        )
    if "national_several_figures" in flags:
        notes.append(
            "several figures printed, for different groups ("
            + ", ".join(_percent(v) for v in row.values)
            + ")"
            + (f"; the chart shows the first, {_percent(row.sense)} (hollow diamond)"
               if row.plotted else "")
        )  # fmt: skip
    if "national_range" in flags:
        span = f" ({'–'.join(f'{v:g}' for v in row.values)} %)" if row.values else ""
        notes.append(f"a range across groups{span}: no single level, not plotted")
    if "national_vague" in flags:
        notes.append("a share in words only, no figure: not plotted")
    if conflict:
        notes.append(
            "this year's national figures disagree between snapshots or pages ("
            + ", ".join(_percent(v) for v in year_values)
            + "): each is plotted"
        )
    return "; ".join(notes)


def _national_table(national: pd.DataFrame, observations: pd.DataFrame) -> str:
    """Each survey year's national figure: shown (the question's sense), as the page
    printed it, and what to know of it (flags and conflicts, in words)."""
    if national.empty:
        return '<p class="muted">No national figure with a survey year.</p>'
    conflict_years = {
        int(y) for y in observations.loc[observations["national_conflict"], "survey_year"].dropna()
    }
    rows = []
    for row in national.itertuples():
        year_values = sorted(set(national.loc[
            (national["survey_year"] == row.survey_year) & national["plotted"], "sense"]))
        shown = _percent(row.sense) if row.plotted else "not plotted"
        if row.measure != SHARE_OF_MUNICIPALITIES:
            figures = (
                f"{row.printed:g} ({MEASURE_WORDS.get(row.measure or '', 'unknown measure')}"
                ": not a share of municipalities, not plotted)"
                if pd.notna(row.printed)
                else "no figure"
            )
        else:
            figures = (
                " and ".join(_percent(v) for v in row.values)
                if "national_several_figures" in row.flags
                else (_percent(row.printed) if pd.notna(row.printed) else "no figure")
            )
        printed = f"“{html.escape(_printed_sentence(row.statement))}” = {figures}"
        note = _national_note(row, year_values, row.survey_year in conflict_years)
        rows.append([str(row.survey_year), shown, printed, note, str(row.n)])
    return _table(
        ["survey year", "shown (" + Y_TITLE + ")", "as the page printed it", "what to know",
         "findings"],
        rows,
        numeric={0, 1, 4},
    )  # fmt: skip


# --- pages ------------------------------------------------------------------------------------


def _index(release: Release, areas: dict[str, str]) -> str:
    info, pages = release.info, release.pages
    parsed = pages[pages["parse_status"] != "failed"]
    years = release.observations["survey_year"].dropna().astype(int)
    coverage = _table(
        ["measure", "value"],
        [
            ["municipalities", str(parsed["municipality"].nunique())],
            ["areas", str(len(areas))],
            ["questions (indicators)", str(len(release.indicators))],
            ["survey years", f"{years.min()}–{years.max()}" if len(years) else "–"],
            ["page snapshots", f"{len(pages)} ({plural(pages['url'].nunique(), 'page')})"],
            ["findings", str(len(release.findings))],
        ],
    )
    quality = release.quality
    failed = int((pages["parse_status"] == "failed").sum())
    why_no_year = quality["findings_without_year_by_basis"].items()
    rows = [
        ("rejected lines", info.get("n_rejects", 0),
         "lines the parser could not turn into a finding (table <code>rejects</code>)"),
        ("failed pages", failed, "snapshots that could not be parsed at all"),
        ("national-figure conflicts", quality["national_conflicts"],
         "a question and survey year printed with several national percents"),
        ("findings without a survey year", quality["findings_without_year"],
         "by why: " + (", ".join(f"{k}: {v}" for k, v in why_no_year) or "–")),
    ]  # fmt: skip
    checks = _table(
        ["check", "count", "what it means"], [[a, str(b), c] for a, b, c in rows], numeric={1}
    )
    body = f"""<h1>Öppna jämförelser: release {info["release"]}</h1>
<p>Published {_e(info["finished_at"])} by parser {_e(info["parser_version"])}.</p>
<p class="cite">Cite as: {html.escape(citation_line(info))}</p>
<h2>Coverage</h2>{coverage}
<h2>Data quality</h2>{checks}
<h2>Areas</h2>{_areas_table(release, areas)}
<h2>Latest changes</h2>{_change_list(release, limit=INDEX_CHANGES, depth=0)}
<p><a href="changes.html">Every change</a></p>"""
    return _page(f"Release {info['release']}", body, 0, release)


def _areas_table(release: Release, areas: dict[str, str]) -> str:
    """Every area, linked to its page, with its number of questions."""
    counts = release.indicators["area"].value_counts()
    rows = [
        [f'<a href="areas/{file}">{html.escape(area)}</a>', str(int(counts.get(area, 0)))]
        for area, file in areas.items()
    ]
    return _table(["area", "questions"], rows, numeric={1})


def _areas_page(release: Release, areas: dict[str, str]) -> str:
    return _page("Areas", f"<h1>Areas</h1>{_areas_table(release, areas)}", 0, release)


def _area_page(release: Release, area: str) -> str:
    questions = release.indicators[release.indicators["area"] == area].sort_values(
        ["last_survey_year", "canonical_statement"], ascending=[False, True], na_position="last"
    )
    rows = [
        [_question_link(q.indicator_id, q.canonical_statement, 1), _e(q.first_survey_year),
         _e(q.last_survey_year), str(q.n_observations), str(q.n_wordings)]
        for q in questions.itertuples()
    ]  # fmt: skip
    body = (
        f"<h1>{html.escape(area)}</h1>"
        f"<p>{plural(len(questions), 'question')}, latest wording first.</p>"
        + _table(
            ["question (latest wording)", "first year", "last year", "observations", "wordings"],
            rows,
            numeric={1, 2, 3, 4},
        )  # fmt: skip
    )
    return _page(area, body, 1, release)


def _question_page(release: Release, question: Any, area_file: str) -> str:
    observations = release.observations[
        release.observations["indicator_id"] == question.indicator_id
    ]
    links = release.links[release.links["indicator_id"] == question.indicator_id]
    findings = release.findings.merge(links, on="finding_id")
    wordings = (
        findings.groupby("national_statement", dropna=False)
        .agg(years=("resolved_survey_year", lambda s: sorted({int(y) for y in s.dropna()})),
             n=("finding_id", "size"))
        .reset_index()
        .sort_values("years", key=lambda s: s.map(lambda y: y[0] if y else 9999))
    )  # fmt: skip
    wording_rows = [
        [html.escape(w.national_statement), ", ".join(map(str, w.years)) or "–", str(w.n)]
        for w in wordings.itertuples()
    ]
    national = national_rows(findings)
    answer_rows = [
        [_entity_of(o), _e(o.survey_year), _status(o.local_status), _e(o.local_answer),
         _e(o.local_value), _national_of(o), _e(getattr(o, "comparison", None)),
         "yes: " + ", ".join(o.conflict_columns) if o.conflict else "", str(o.n_snapshots)]
        for o in observations.sort_values(
            ["entity" if "entity" in observations else "municipality", "survey_year"],
            na_position="first",
        ).itertuples()
    ]  # fmt: skip
    sources = release.pages[release.pages["snapshot_id"].isin(set(findings["snapshot_id"]))]
    sources = sources.sort_values(["captured_at", "url"], ascending=False, na_position="last")
    source_rows = [
        [f'<a href="{html.escape(s.url)}">{html.escape(s.url)}</a>', _e(s.captured_at),
         _e(s.municipality), f"<code>{_e(s.raw_sha256)}</code>"]
        for s in sources.head(MAX_SOURCES).itertuples()
    ]  # fmt: skip
    if len(sources) > MAX_SOURCES:  # a question of a national backfill: thousands of captures
        source_rows.append([
            f"… and {len(sources) - MAX_SOURCES} earlier snapshots: their ids are in "
            "<code>observations.snapshot_ids</code>, their URLs and sha256 in <code>pages</code>",
            "", "", "",
        ])  # fmt: skip
    body = f"""<p><a href="../areas/{area_file}">{html.escape(question.area)}</a></p>
<h1>{html.escape(question.canonical_statement)}</h1>
<p class="muted">Indicator <code>{question.indicator_id}</code> · survey years
{_e(question.first_survey_year)}–{_e(question.last_survey_year)} ·
{plural(question.n_findings, "finding")} in {plural(len(sources), "snapshot")}</p>
<div class="charts">{question_chart(observations, national)}</div>
<p class="muted">National share: the percent of municipalities that have or do what the
question asks. Where a page printed the share of those <em>without</em> it, the chart shows
100 − that figure (hollow circle); where it printed several figures for different groups, the
first (hollow diamond). A range or a share in words only is not plotted.</p>
<h2>National figure per survey year</h2>
{_national_table(national, observations)}
<h2>Answers per municipality (or county) and survey year</h2>
{_table(["entity", "survey year", "answer", "local answer", "local figure", "national figure (measure; a share of municipalities in the question's sense)", "against the nation", "snapshots disagree", "snapshots"], answer_rows, numeric={1, 4, 5, 8})}
<h2>Every wording of the question</h2>
{_table(["wording", "survey years", "findings"], wording_rows, numeric={2})}
<h2>Source snapshots</h2>
<details><summary>{plural(len(sources), "snapshot")}, newest first (URL, capture time, sha256 of the archived bytes)</summary>
{_table(["URL", "captured", "municipality", "sha256"], source_rows)}</details>"""  # noqa: E501
    return _page(question.canonical_statement, body, 1, release)


def _shown_national(observation: Any) -> str:
    """An observation's national share in the question's sense, and the printed figure
    when they differ ("20 (printed 80)")."""
    shown, printed = observation.national_percent, observation.national_percent_printed
    if pd.notna(shown) and pd.notna(printed) and shown != printed:
        return f"{_e(shown)} (printed {_e(printed)})"
    return _e(shown)


def _change_list(release: Release, limit: int | None, depth: int) -> str:
    # Newest release first, then newest date: a backfill's old captures come with a new
    # release, and sorting by date alone put that release's changes below older ones.
    changes = release.changes.sort_values(
        ["release", "to_seen", "url", "to_snapshot_id"],
        ascending=[False, False, True, True],
        na_position="last",
    )
    if limit is not None:
        changes = changes.head(limit)
    if changes.empty:
        return "<p>No changes between snapshots in this release.</p>"
    statement_of = dict(
        zip(
            release.indicators["indicator_id"],
            release.indicators["canonical_statement"],
            strict=True,
        )
    )
    statement_of_finding = dict(
        zip(release.findings["finding_id"], release.findings["national_statement"], strict=True)
    )
    parts = []
    groups = changes.groupby(
        ["release", "to_seen", "url", "to_snapshot_id"], sort=False, dropna=False
    )
    for (number, seen, url, _), group in groups:
        first = group.iloc[0]
        items = []
        for row in group.itertuples():
            before, after = report.change_values(row)
            text = report.change_statement(row, statement_of_finding, statement_of)
            detail = (
                "".join(
                    f"<div>{html.escape(column)}: "
                    f'<span class="before">{_e(before.get(column))}</span> → '
                    f'<span class="after">{_e(after.get(column))}</span></div>'
                    for column in row.columns_changed
                )
                if row.change_kind == "edited"
                else ""
            )
            items.append(
                f'<li class="change"><strong>{row.change_kind}</strong> {_e(row.survey_year)} '
                f"{_question_link(row.indicator_id, text, depth)}{detail}</li>"
            )  # fmt: skip
        parts.append(
            f"<h3>Release {_e(number)} · {_e(seen)} · {_e(first['area'])} · "
            f"{_e(first['municipality'])}</h3>"
            f'<p class="muted">since {_e(first["from_seen"])} · <a href="{html.escape(url)}">'
            f"{html.escape(url)}</a></p><ul>{''.join(items)}</ul>"
        )
    return "".join(parts)


#: The marker `oj report` leaves in a folder it wrote: which release, and every file and
#: folder it wrote there. Only a folder with it is replaced, and only when it holds nothing
#: else (`oj report --out mine` deleted a thesis.tex the folder held). The checks and the
#: swap are shared with `oj package` (flows/outfolder.py).
MARKER = ".oj-report"
TOOL = "oj report"


def _written_by_report(folder: Path) -> dict[str, Any] | None:
    """The marker of a folder `oj report` wrote, or None."""
    return outfolder.written_by(folder, TOOL, MARKER)


def check_out(out: Path | str) -> Path:
    """The absolute folder the site of `--out out` goes to, checked before anything is
    written (see `outfolder.check_out`)."""
    return outfolder.check_out(out, TOOL, MARKER)


def build_site(
    datasets_dir: Path | str, out: Path | str, release: int | None = None
) -> dict[str, Any]:
    """Write the site of a release to the folder `out`; what it wrote.

    `out` may be new, empty, or a site this function wrote before (its `MARKER` is
    there and nothing else was added): that one is replaced whole, atomically. Anything
    else raises OutFolderError before a file is written; a folder that cannot be
    written raises OutFolderUnwritable. Nothing it did not write is ever deleted.
    """
    target = check_out(out)
    data = load_release(datasets_dir, release)
    areas = {area: f"{slug(area)}.html" for area in sorted(data.indicators["area"].unique())}
    feed = "<h1>What changed, newest first</h1>" + _change_list(data, None, 0)
    files = {
        "style.css": CSS,
        "index.html": _index(data, areas),
        "areas.html": _areas_page(data, areas),
        "changes.html": _page("Changes", feed, 0, data),
    }
    for area, file in areas.items():
        files[f"areas/{file}"] = _area_page(data, area)
    for question in data.indicators.itertuples():
        files[f"questions/{question.indicator_id}.html"] = _question_page(
            data, question, areas[question.area]
        )
    marker = {"written_by": "oj report", "release": int(data.info["release"]),
              "folders": ["areas", "questions"], "files": sorted(files)}  # fmt: skip
    # Built beside its folder under a name of its own, then swapped in, so a reader never
    # sees half of it.

    def write(staging: Path) -> None:
        for name, text in files.items():
            (staging / name).write_text(text, "utf-8")

    outfolder.replace_folder(out, TOOL, MARKER, marker, write)
    return {"release": data.info["release"], "files": len(files), "questions": len(data.indicators),
            "index": target / "index.html"}  # fmt: skip
