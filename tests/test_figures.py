"""Figures say what the page says (issue 19): a negated share enters its question's series
in the question's own sense, several figures are flagged, a page that is no
municipality's gets no local answers, and `oj check` names what a researcher must see."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows import pipeline, raw_archive, report, storage
from flows.schemas import OBSERVATIONS
from parsers import national_reading, parse_page
from parsers.linking import normalize_statement

URL = "https://www.kalmar.se/omsorg/oppna-jamforelser/ekonomiskt-bistand.html"
END = "\nFler sidor inom jämförelser\n"


def _page(heading: str, bullets: list[tuple[str, str]]) -> bytes:
    body = "".join(f" • {statement}\n  {answer}\n" for statement, answer in bullets)
    text = (
        "Ekonomiskt bistånd\n\nÖppna jämförelser ekonomiskt bistånd bygger på enkäter.\n\n"
        f"{heading}\n{body}{END}"
    )
    return text.encode("utf-8")


def _publish(tmp_path: Path, pages: list[bytes]) -> Path:
    """Each page as a capture of one Kalmar page, a day apart; one release of them all."""
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    records = [
        raw_archive.add_snapshot(
            raw,
            data,
            url=URL,
            source="wayback",
            municipality="Kalmar",
            captured_at=datetime(2021, 9, day, tzinfo=UTC),
        )[0]
        for day, data in enumerate(pages, start=1)
    ]
    writer = storage.ReleaseWriter(
        datasets,
        mode="append",
        parser_version="test",
        run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
    )
    writer.write(pipeline.parse_snapshots(raw, records))
    pipeline.publish_release(writer, len(records))
    return datasets


NEGATED = (
    "Däremot har 4 av 5 kommuner inte en aktuell rutin för att förhindra att barnfamiljer "
    "med hyresskuld avhyses."
)
POSITIVE_2020 = (
    "25 procent av kommunerna har en aktuell rutin för att förhindra att barnfamiljer med "
    "hyresskuld avhyses."
)


# --- item 4 of the issue: a negated share, in the question's own sense -----------------------


def test_negated_and_positive_wordings_are_one_question() -> None:
    # Ekonomiskt bistånd prints a question one year as the share *without* the thing ("4 av
    # 5 kommuner har inte ...", "... saknar ...") and another year as the share with it:
    # one question, so one linking key. Short lines: fuzzy scoring alone cannot bridge
    # the negation when little else is said.
    positive = normalize_statement("20 procent av kommunerna har en rutin mot avhysning.")
    for negated in (
        "Däremot har 4 av 5 kommuner inte en rutin mot avhysning.",
        "4 av 5 kommuner saknar en rutin mot avhysning.",
    ):
        assert normalize_statement(negated) == positive, negated
    # a negation that names the thing stays: it is another question
    inte = normalize_statement("35 procent av kommunerna har en rutin för att inte röja uppgifter.")
    assert inte == "har en rutin för att inte röja uppgifter"


def test_observation_holds_the_share_with_the_thing(tmp_path: Path) -> None:
    # 2019: "4 av 5 kommuner ... inte" (20 % have the routine); 2020: 25 % have it. One
    # series, in one sense: 20 -> 25, never 80 -> 25.
    datasets = _publish(
        tmp_path,
        [
            _page("2019 års resultat visar att:", [(NEGATED, "I Kalmar finns en rutin.")]),
            _page("2020 års resultat visar att:", [(POSITIVE_2020, "I Kalmar finns en rutin.")]),
        ],
    )
    findings = storage.load_table("findings", None, datasets)
    negated = findings[findings["national_statement"] == NEGATED].iloc[0]
    # the finding keeps what the page printed, and says so
    assert negated["national_percent"] == 80
    assert "national_share_negated" in list(negated["flags"])
    observations = storage.load_table("observations", None, datasets)
    assert observations["indicator_id"].nunique() == 1  # one question, one series
    rows = observations.sort_values("survey_year")
    assert rows["survey_year"].tolist() == [2019, 2020]
    assert rows["national_percent"].tolist() == [20, 25]
    assert rows["national_percent_printed"].tolist() == [80, 25]
    assert [list(flags) for flags in rows["national_flags"]] == [["national_share_negated"], []]
    assert [list(v) for v in rows["national_percent_all_values"]] == [[20], [25]]
    for name in ("national_percent_printed", "national_flags"):
        assert name in OBSERVATIONS.names


def test_a_flip_of_wording_is_no_national_change(tmp_path: Path) -> None:
    # The same 2019 result printed first as "4 av 5 kommuner saknar ..." then, on the next
    # capture, as "20 procent av kommunerna har ...": the statement changed, the figure
    # did not. No national change, no national conflict.
    saknar = (
        "4 av 5 kommuner saknar en aktuell rutin för att förhindra att barnfamiljer med "
        "hyresskuld avhyses."
    )
    har = POSITIVE_2020.replace("25 procent", "20 procent")
    datasets = _publish(
        tmp_path,
        [
            _page("2019 års resultat visar att:", [(saknar, "I Kalmar finns en rutin.")]),
            _page("2019 års resultat visar att:", [(har, "I Kalmar finns en rutin.")]),
        ],
    )
    changes = storage.load_table("changes", None, datasets)
    (edit,) = changes.itertuples()
    assert edit.change_kind == "edited"
    assert list(edit.columns_changed) == ["national_statement"]
    assert (edit.national_percent_before, edit.national_percent_after) == (20, 20)
    assert not edit.national_changed
    (row,) = storage.load_table("observations", None, datasets).itertuples()
    assert not row.national_conflict
    assert list(row.national_percent_all_values) == [20]
    assert row.national_percent == 20 and row.national_percent_printed == 20
    assert list(row.national_flags) == ["national_share_negated"]


# --- item 5: two figures, one silently chosen ------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "percent", "values"),
    [
        # Våld i nära relationer: one figure per activity, joined by "respektive"
        (
            "Få kommuner uppger att de använt enskildas uppfattning för att utveckla "
            "myndighetsutövningen (12 procent) respektive utförarverksamheten (11 procent).",
            12,
            [12, 11],
        ),
        # one figure per group of staff
        (
            "Fortbildning för handläggare av vuxna (95 procent) respektive barn (92 procent).",
            95,
            [95, 92],
        ),
        # the unit only on the last of the list
        ("93 och 86 procent av kommunerna har genomfört fortbildningen.", 93, [93, 86]),
        # a figure per sub-question (IBIC at investigation, at follow-up)
        (
            "13 procent av kommunerna använder IBIC vid utredningar och 9 procent vid "
            "uppföljningar.",
            13,
            [13, 9],
        ),
        # two sentences, two groups
        (
            "Sju av tio kommuner erbjuder stödsamtal med biståndsbeslut. Vidare erbjuder sex av "
            "tio kommuner stödsamtal utan biståndsbeslut.",
            70,
            [70, 60],
        ),
    ],
)
def test_several_current_figures_are_flagged(
    statement: str, percent: float, values: list[float]
) -> None:
    reading = national_reading(statement)
    # the headline stays the first figure; the flag is what warns a researcher
    assert (reading.percent, reading.values) == (percent, tuple(values))
    assert "national_several_figures" in reading.flags


@pytest.mark.parametrize(
    "statement",
    [
        # an earlier survey's figure is history, not a second current figure
        "Andelen har minskat med sju procentenheter, från 22 till 15 procent 2019.",
        "Det gäller 66 procent 2021, jämfört med 58 procent 2019.",
        "83 procent av kommunerna har satsat på fortbildning. Det är en minskning mot 94 "
        "procent av kommunerna 2020.",
        "Andelen är 48 procent. Det är en ökning i jämförelse med 2021 då det var 44 procent.",
        # a figure and its restatement in words is one figure
        "Sex av tio kommuner (61 procent) har en plan.",
        # a range is flagged as a range, not as several figures
        "Andelen ligger mellan 12 och 30 procent beroende på målgrupp.",
    ],
)
def test_one_current_figure_is_not_flagged(statement: str) -> None:
    assert "national_several_figures" not in national_reading(statement).flags


# --- item 7: no local answers on a page that belongs to no municipality ----------------------

NATIONAL_PAGE = Path(__file__).parent / "fixtures" / "national" / "national_summary.html"


@pytest.mark.parametrize(
    "url",
    [
        None,  # saved by hand, no address
        # a national body's host is no municipality's
        "https://www.kunskapsguiden.se/omraden-och-teman/brottsoffer/oppna-jamforelser-2020/",
        "https://www.socialstyrelsen.se/statistik-och-data/oppna-jamforelser/brottsoffer/",
    ],
)
def test_national_summary_page_has_no_local_answers(url: str | None) -> None:
    # Kunskapsguiden-style: a title, "2020 års resultat visar att:", national bullets only,
    # then "Öppna jämförelser 2020 – ... är framtagen av Socialstyrelsen." That closing line
    # answered the last bullet; nothing on the page is any municipality's answer.
    page = parse_page(NATIONAL_PAGE.read_bytes(), url=url)
    assert page.municipality is None
    assert len(page.findings) == 3
    assert [f.local_answer for f in page.findings] == [None, None, None]
    assert all("no_local_answer" in f.flags for f in page.findings)
    assert [f.local_status for f in page.findings] == [None, None, None]
    closing = [r for r in page.rejects if "framtagen av Socialstyrelsen" in r.text]
    assert [r.reason for r in closing] == ["unattached_paragraph"]


def test_municipality_page_as_text_without_url_keeps_its_answers() -> None:
    # A Kalmar page pasted as plain text, no address: its answers name Kalmar, so the page
    # is Kalmar's and its answers stay, the unnamed "Här ..." answer too.
    text = (
        "Ekonomiskt bistånd\n\nÅrets resultat visar att:\n"
        " • 45 procent av kommunerna har en plan för barnfamiljer med hyresskuld.\n"
        "  I Kalmar finns en sådan plan.\n"
        " • 30 procent av kommunerna har en rutin för uppföljning.\n"
        "  Här gör man uppföljningen varje år.\n"
        " • 12 procent av kommunerna har en samordnare.\n"
        "  I Kalmar saknas en samordnare.\n" + END
    )
    page = parse_page(text)
    assert page.municipality == "Kalmar"
    assert [f.local_answer for f in page.findings] == [
        "I Kalmar finns en sådan plan.",
        "Här gör man uppföljningen varje år.",
        "I Kalmar saknas en samordnare.",
    ]


def test_unnamed_answer_on_a_municipality_page_is_an_answer() -> None:
    # The municipality comes from the address; the answer does not name it.
    text = (
        "Ekonomiskt bistånd\n\nÅrets resultat visar att:\n"
        " • 45 procent av kommunerna har en plan för barnfamiljer med hyresskuld.\n"
        "  Här gör man en plan för varje familj.\n" + END
    )
    (finding,) = parse_page(text, url=URL).findings
    assert finding.municipality == "Kalmar"
    assert finding.local_answer == "Här gör man en plan för varje familj."
    assert "no_local_answer" not in finding.flags


# --- `oj check` names the conflicts and the flagged values -------------------------------------

SKOLGANG = (
    "22 procent av kommunerna har en aktuell skriftlig och på ledningsnivå beslutad rutin för "
    "hur handläggare ska säkra skolgången för barn i skyddat boende."
)
SEVERAL = (
    "Få kommuner uppger att de använt enskildas uppfattning för att utveckla "
    "myndighetsutövningen (12 procent) respektive utförarverksamheten (11 procent)."
)


def test_check_names_each_conflict_and_the_flagged_values(tmp_path: Path) -> None:
    # "2 national-figure conflicts (details: oj check)" said which nowhere: oj check must
    # name the question by its telling words (not "22 procent av kommunerna har en aktuell
    # skriftlig och på ledningsnivå beslutad rutin ...", cut before the subject), the
    # year and the figures, and list the flagged national values before anyone cites them.
    answer = "I Kalmar finns en rutin."
    datasets = _publish(
        tmp_path,
        [
            _page(
                "2019 års resultat visar att:",
                [(SKOLGANG, answer), (NEGATED, answer), (SEVERAL, answer)],
            ),
            # a later capture prints another figure for the same question and year
            _page(
                "2019 års resultat visar att:",
                [(SKOLGANG.replace("22", "23"), answer), (NEGATED, answer), (SEVERAL, answer)],
            ),
        ],
    )
    text, counts = report.check_report(datasets)
    assert counts["national_conflicts"] == 1
    conflict = next(line for line in text.splitlines() if "— 2019:" in line)
    assert "skolgången för barn i skyddat boende" in conflict
    assert "22 % vs 23 %" in conflict
    assert counts["national_flags"] == {"national_share_negated": 1, "national_several_figures": 1}
    assert "national_share_negated" in text and "national_several_figures" in text
    # the negated share: in the series' sense, and as printed
    negated = next(line for line in text.splitlines() if "hyresskuld" in line)
    assert "(2019): 20 % (printed 80 % without)" in negated
    several = next(line for line in text.splitlines() if "utförarverksamheten" in line)
    assert several.endswith("(2019): 12 %, 11 %")
    # the run's summary stays one line and names the first conflict
    line = pipeline.summary_line(
        {"release": 1, "new_release": True, "pages_read": 2, "pages_in_archive": 2,
         "findings": 6, "rejects": 0, "failed_pages": 0,
         "national_conflicts": counts["national_conflicts"],
         "first_national_conflict": counts["first_national_conflict"],
         "findings_without_year": 0}
    )  # fmt: skip
    assert "\n" not in line
    assert "national-figure conflicts: 1 (first: " in line
    assert "skyddat boende (2019: 22 % vs 23 %)" in line
