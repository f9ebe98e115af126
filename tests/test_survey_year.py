"""Survey years from evidence, strongest first, and null where the page cannot tell
(issue 9). Each case is a short page in the seeds' grammar; the comment says why."""

from __future__ import annotations

from datetime import datetime

import pytest

from parsers import parse_page, statement_years

ANSWER = "I Kalmar finns en rutin."


def page(*sections: tuple[str, list[str]], footer: str = "") -> str:
    """A text extract: sections of (heading, statements), each statement with an answer."""
    lines = ["Våld i nära relationer", ""]
    for heading, statements in sections:
        lines += [heading, ""]
        for statement in statements:
            lines += [f" • {statement}", f"  {ANSWER}", ""]
    return "\n".join(lines + [footer])


def years(text: str, captured_at: datetime | None = None) -> list[tuple[int | None, str]]:
    parsed = parse_page(text, municipality="Kalmar", captured_at=captured_at)
    return [(f.survey_year, f.survey_year_basis) for f in parsed.findings]


CURRENT = "Årets resultat visar att:"
PLAIN = "63 procent av kommunerna har en aktuell rutin."


@pytest.mark.parametrize(
    ("text", "captured_at", "expected"),
    [
        # 1. an explicit heading wins over everything
        (page(("2019 års resultat visar att:", [PLAIN])), None, [(2019, "heading")]),
        (
            page(("Resultaten från 2019 års undersökning visar att:", [PLAIN])),
            None,
            [(2019, "heading")],
        ),
        # 2. a year attached to the current national figure (seed 003: "från 22 till 15
        #    procent 2019"); the earlier year is not the survey's
        (
            page((CURRENT, ["Andelen har minskat från 22 till 15 procent 2019."])),
            None,
            [(2019, "stated_year")],
        ),
        (
            page((CURRENT, ["Andelen har ökat från 31 procent 2017 till 54 procent 2020."])),
            None,
            [(2020, "stated_year")],
        ),
        (
            page((CURRENT, ["Det gäller 66 procent 2021, jämfört med 58 procent 2019."])),
            None,
            [(2021, "stated_year")],
        ),
        # ... and the section's other findings share it
        (
            page((CURRENT, [PLAIN, "Andelen har minskat från 22 till 15 procent 2019."])),
            None,
            [(2019, "stated_year"), (2019, "stated_year")],
        ),
        # 3. a comparison year: the survey is the one after (seed 004: "i jämförelse med 2021")
        (
            page((CURRENT, ["Fler kommuner har en överenskommelse i jämförelse med 2021."])),
            None,
            [(2022, "comparison_year")],
        ),
        # seed 004: "Det är en minskning mot 94 procent av kommunerna 2020" compares
        (
            page(
                (
                    CURRENT,
                    ["83 procent har det. Det är en minskning mot 94 procent av kommunerna 2020."],
                )
            ),
            None,
            [(2021, "comparison_year")],
        ),
        # "sedan 2022" only bounds the year: no year from it alone
        (
            page((CURRENT, ["Andelen har ökat sedan 2022 och är nu 40 procent."])),
            None,
            [(None, "none")],
        ),
        # 4. page dates with the publication calendar: July-December of Y -> Y
        (
            page((CURRENT, [PLAIN]), footer="Senast uppdaterad: 2 juli 2020"),
            None,
            [(2020, "page_updated")],
        ),
        # January-February of Y+1 -> still Y (seed 004: updated 2023-01-09 -> 2022)
        (
            page((CURRENT, [PLAIN]), footer="Senast uppdaterad: 9 januari 2023"),
            None,
            [(2022, "page_updated")],
        ),
        # March-June is ambiguous on its own ...
        (
            page((CURRENT, [PLAIN]), footer="Senast uppdaterad: 30 juni 2020"),
            None,
            [(None, "none")],
        ),
        # ... unless a dated section kept on the page bounds it (seed 000: 2019 års under Årets)
        (
            page(
                (CURRENT, [PLAIN]),
                ("2019 års resultat visar att:", [PLAIN]),
                footer="Senast uppdaterad: 30 juni 2020",
            ),
            None,
            [(2020, "page_updated"), (2019, "heading")],
        ),
        # a bound alone is not a year: surveys are not all yearly
        (
            page((CURRENT, [PLAIN]), ("2018 års resultat visar att:", [PLAIN])),
            None,
            [(None, "none"), (2018, "heading")],
        ),
        # the capture time is read the same way when the page has no dates
        (page((CURRENT, [PLAIN])), datetime(2021, 9, 1), [(2021, "captured_at")]),
        (page((CURRENT, [PLAIN])), datetime(2022, 2, 1), [(2021, "captured_at")]),
        (page((CURRENT, [PLAIN])), datetime(2021, 4, 1), [(None, "none")]),
        # evidence that contradicts: a stated 2021 on a page updated in January 2021
        # (results of 2021 cannot be out yet) -> null, basis conflict
        (
            page(
                (CURRENT, ["Andelen är 57 procent år 2021."]),
                footer="Senast uppdaterad: 9 januari 2021",
            ),
            None,
            [(None, "conflict")],
        ),
        # the comparison says 2021, the page (updated September 2023) says 2023: either
        # the survey skipped years or the page was edited without new results -> null
        (
            page(
                (CURRENT, ["Fler kommuner har en rutin i jämförelse med 2020."]),
                footer="Senast uppdaterad: 12 september 2023",
            ),
            None,
            [(None, "conflict")],
        ),
        # statements of one section stating different years -> conflict for the rest
        (
            page(
                (
                    CURRENT,
                    ["Andelen är 57 procent år 2021.", "Andelen är 40 procent år 2019.", PLAIN],
                )
            ),
            None,
            [(2021, "stated_year"), (2019, "stated_year"), (None, "conflict")],
        ),
        # seed 004: a second "Årets resultat" block kept from an earlier update compares
        # with 2020; the page dates speak for the first block only
        (
            page(
                (CURRENT, ["Fler kommuner har en överenskommelse i jämförelse med 2021."]),
                (CURRENT, ["83 procent har det. Det kan jämföras med 94 procent 2020."]),
                footer="Senast uppdaterad: 9 januari 2023",
            ),
            None,
            [(2022, "comparison_year"), (2021, "comparison_year")],
        ),
    ],
)
def test_survey_year_evidence(
    text: str, captured_at: datetime | None, expected: list[tuple[int | None, str]]
) -> None:
    assert years(text, captured_at) == expected


def test_years_in_the_local_answer_are_not_evidence() -> None:
    # seed 002: "I Kalmar har detta inte skett under 2017. Under 2018 har ..." is about
    # Kalmar's own work, not the survey
    text = (
        f"{CURRENT}\n\n • {PLAIN}\n  I Kalmar har detta inte skett under 2017. Under 2018 har "
        "implementeringen påbörjats.\n"
    )
    assert years(text) == [(None, "none")]


@pytest.mark.parametrize(
    ("statement", "stated", "earlier", "since"),
    [
        ("från 22 till 15 procent 2019.", 2019, (), ()),
        ("Det är en ökning i jämförelse med 44 procent 2021.", None, (2021,), ()),
        (
            "55 procent. Det är en ökning i jämförelse med 52 procent av kommunerna 2020 och 2019.",
            None,
            (2020, 2019),
            (),
        ),
        ("73 procent, vilket är en ökning med fem procentenheter från 2018.", None, (2018,), ()),
        ("År 2021 hade 57 procent av kommunerna en plan.", 2021, (), ()),
        # the year follows the figure that restates the share in words: the same current
        # level as national_percent reads (61), not the words before it
        ("Sex av tio kommuner (61 procent) 2021 har en plan.", 2021, (), ()),
        ("Andelen har ökat sedan 2022.", None, (), (2022,)),
        # a count with a year is not a figure's year: "48 000 barn ... under 2019"
        (
            "Cirka 48 000 barn ingick i familjer med långvarigt ekonomiskt bistånd under 2019.",
            None,
            (),
            (),
        ),
    ],
)
def test_statement_years(statement: str, stated: int | None, earlier: tuple, since: tuple) -> None:
    found = statement_years(statement)
    assert (found.stated, found.earlier, found.since) == (stated, earlier, since)
