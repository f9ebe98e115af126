"""Survey years from the evidence a page holds, strongest first, and null where it cannot tell.

A wrong year is worse than a missing one: researchers cite the series. Every finding
gets a year and the basis it rests on:

1. `heading`: an explicit year in the section heading ("2019 års resultat visar att:").
2. `page_title`: a year in the page's title ("Öppna jämförelser äldreomsorg 2019"), for
   the page's current (undated) sections.
3. `stated_year`: a year attached to the current national figure ("... till 36 procent
   2019", "År 2021 hade 57 procent ..."), the finding's own or, for findings with none,
   the one year every stated year of its section agrees on.
4. `comparison_year`: the year after the latest earlier survey the section compares
   with ("i jämförelse med 2021" -> 2022; "mot 94 procent av kommunerna 2020" -> 2021).
   "sedan 2022" only bounds the year (after 2022): it is not a year.
5. `page_updated` / `page_published` / `captured_at`: the page's dates read with the
   publication calendar. Results come out in spring and early summer, so a page
   updated (or captured) from July to December of year Y shows Y's results, one from
   January or February of Y+1 still shows Y's, and March to June is ambiguous on its
   own (Y-1 or Y). Seed 000, updated 2020-06-30, keeps "2019 års resultat" under
   "Årets resultat": the window {2019, 2020} minus "not after 2019" leaves 2020. Seed
   004, updated 2023-01-09, shows 2022.
   The dates speak for the page's *first* current section only: seed 004 keeps a second
   "Årets resultat" block whose figures compare with 2020, a block from an earlier update.

Bounds from all the evidence are checked against the year chosen: a year after the
page's or capture's upper bound, or not after a comparison year, is a `conflict`, and
the year is null. Years in the local answer ("Under 2020 har Kalmar ...") are about the
municipality's own work and are never evidence. Nothing here guesses: `none` when the
evidence does not determine one year.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from parsers.numbers import current_level

_YEAR = r"(?:19|20)\d\d"
_YEAR_RE = re.compile(rf"\b{_YEAR}\b")
# "2019 års resultat", "Resultaten från 2019 års undersökning".
_YEARS_OWN = re.compile(rf"\b(?P<year>{_YEAR})\s+års\b", re.IGNORECASE)
# Years a heading or title names only to compare with: "Resultat 2021 jämfört med 2019".
_COMPARED_YEAR_IN_HEADING = re.compile(
    rf"(?:jämfört med|jämförelse med|\bmot|\bsedan|\bfrån|\bän)\s+(?:år\s+)?{_YEAR}", re.IGNORECASE
)
_PREVIOUS_YEARS = re.compile(r"\bförra\s+årets\b", re.IGNORECASE)

# After the current figure: "36 procent 2019", "21 procent av kommunerna 2020", "57
# procent år 2021", "(88 procent, 2021)".
_YEAR_AFTER_FIGURE = re.compile(
    rf"^\)?(?:\s*(?:av\s+(?:alla\s+|Sveriges\s+|landets\s+|samtliga\s+)?kommunerna?))?"
    rf"(?:\s+\(?\s*(?:år\s+|under\s+)?(?P<year>{_YEAR})\b(?!\s*års)"
    # "(88 procent, 2021)": after a comma only when the year closes the aside, so "12
    # procent, 2019 var andelen 10 procent" does not date 12 with 2019
    rf"|,\s*(?P<aside>{_YEAR})\s*(?:[).;]|$))",
    re.IGNORECASE,
)
# Before the current figure, in its clause: "År 2021 hade 57 procent", "Under 2019 har 36
# procent", "2021 uppgav 66 procent".
_YEAR_BEFORE_FIGURE = re.compile(
    rf"(?:^|[.;:]\s+)(?:(?:år|under)\s+)?(?P<year>{_YEAR}),?\s+(?:[a-zåäö]+\s+){{1,4}}"
    r"(?:ca\.?\s+|cirka\s+|drygt\s+|knappt\s+)?$",
    re.IGNORECASE,
)
# Words after which a year is an earlier survey's: "i jämförelse med 2021", "mot 94
# procent av kommunerna 2020", "Det kan jämföras med 39 procent 2020", "från 2018".
_EARLIER_SURVEY = re.compile(
    rf"(?:jämfört med|jämförelse med|jämföras med|\bmot|\bfrån|\bän|föregående mätning)"
    rf"\s+(?:år\s+)?(?:(?:ca\.?|cirka|drygt|knappt|nästan)\s+)?"
    rf"(?:\d{{1,3}}(?:[,.]\d+)?\s?(?:%|procent)\s+(?:av\s+(?:alla\s+|Sveriges\s+|landets\s+)?"
    rf"kommunerna?\s+)?(?:år\s+)?)?\(?(?P<years>{_YEAR}(?:\s*(?:,|och|respektive)\s*{_YEAR})*)\b",
    re.IGNORECASE,
)
# Only a bound: "har ökat sedan 2022" says the survey is later than 2022, not which year.
_SINCE = re.compile(rf"\bsedan\s+(?:år\s+)?(?P<years>{_YEAR})\b", re.IGNORECASE)

BASES = (
    "heading",
    "page_title",
    "stated_year",
    "comparison_year",
    "page_updated",
    "page_published",
    "captured_at",
    "conflict",
    "none",
)


@dataclass(frozen=True, slots=True)
class SectionEvidence:
    """What a results section says about its year: its heading and its statements."""

    heading: str
    statements: tuple[str, ...]
    relative: bool = False  # results relative to the nation: one block, one survey


@dataclass(frozen=True, slots=True)
class PageDates:
    updated: date | None = None
    published: date | None = None
    captured: date | None = None
    title: str | None = None  # the page title (and <h1>), where a year may be named


def _years(text: str) -> list[int]:
    return [int(year) for year in _YEAR_RE.findall(text)]


def heading_year(heading: str) -> int | None:
    """The survey year a heading names: "2019 års resultat" -> 2019; years it only
    compares with do not count ("Resultat 2021 jämfört med 2019" -> 2021)."""
    own = [int(m.group("year")) for m in _YEARS_OWN.finditer(heading)]
    if own:
        return own[0]
    years = _years(_COMPARED_YEAR_IN_HEADING.sub(" ", heading))
    return years[0] if len(set(years)) == 1 else None


def title_year(title: str | None) -> int | None:
    """One year named in the page title, else None (two different years: no year)."""
    if not title:
        return None
    years = set(_years(_COMPARED_YEAR_IN_HEADING.sub(" ", title)))
    return years.pop() if len(years) == 1 else None


@dataclass(frozen=True, slots=True)
class StatementYears:
    stated: int | None  # the year attached to the current national figure
    earlier: tuple[int, ...]  # years of earlier surveys it compares with
    since: tuple[int, ...]  # "sedan YYYY": bounds only


@lru_cache(maxsize=16384)  # pure: the same statements recur across captures of a page
def statement_years(statement: str) -> StatementYears:
    """The year evidence in one national statement."""
    if not _YEAR_RE.search(statement):
        return StatementYears(None, (), ())
    earlier = tuple(
        year for m in _EARLIER_SURVEY.finditer(statement) for year in _years(m.group("years"))
    )
    since = tuple(int(m.group("years")) for m in _SINCE.finditer(statement))
    stated = None
    current = current_level(statement)
    if current is not None:
        after = _YEAR_AFTER_FIGURE.match(statement[current.end :])
        before = _YEAR_BEFORE_FIGURE.search(statement[max(0, current.start - 60) : current.start])
        if after:
            stated = int(after.group("year") or after.group("aside"))
        elif before:
            stated = int(before.group("year"))
        if stated is not None and stated in earlier and not after:
            stated = None  # "jämfört med 2019 hade 40 procent": the year is the earlier one
    return StatementYears(stated, earlier, since)


def _window(day: date | None) -> tuple[int, ...]:
    """The survey years a page dated `day` can show as its current results."""
    if day is None:
        return ()
    if day.month >= 7:
        return (day.year,)
    if day.month <= 2:
        return (day.year - 1,)
    return (day.year - 1, day.year)


def latest_survey_year(day: date | None) -> int | None:
    """The latest survey year a page dated (or captured) on `day` can show: results come
    out in spring, so January or February of Y shows Y-1 at the latest."""
    if day is None:
        return None
    return day.year if day.month >= 3 else day.year - 1


def section_years(
    sections: Sequence[SectionEvidence], dates: PageDates
) -> list[list[tuple[int | None, str]]]:
    """(survey_year, basis) of every statement of every section, in order."""
    # The page's own date (its update, else its publication) and the capture both bound it.
    page_date = dates.updated if dates.updated is not None else dates.published
    uppers = [latest_survey_year(day) for day in (page_date, dates.captured) if day is not None]
    upper = min(uppers, default=None)
    headed = [heading_year(section.heading) for section in sections]
    dated_on_page = [year for year in headed if year is not None]
    from_title = title_year(dates.title)
    if dates.updated is not None:
        window, window_basis = _window(dates.updated), "page_updated"
    elif dates.published is not None:
        window, window_basis = _window(dates.published), "page_published"
    else:
        window, window_basis = _window(dates.captured), "captured_at"

    # "Förra årets resultat" sections: last year's, dated from the current section below.
    previous = [bool(_PREVIOUS_YEARS.search(section.heading)) for section in sections]
    first_current = next(
        (index for index in range(len(sections)) if headed[index] is None and not previous[index]),
        None,
    )
    # Relative results ("bättre än riksgenomsnittet:", "i nivå med rikssnittet:") split one
    # survey's results by how the municipality did: the page's current evidence speaks
    # for all of them, not only the first.
    current = {first_current} | {
        index
        for index, section in enumerate(sections)
        if section.relative and headed[index] is None
    }
    out: list[list[tuple[int | None, str]]] = []
    current_year: int | None = None
    current_basis = "none"
    for index, section in enumerate(sections):
        n = len(section.statements)
        if headed[index] is not None:
            out.append([(headed[index], "heading")] * n)
            continue
        if previous[index]:
            out.append([])  # filled in below, once the current year is known
            continue
        evidence = [statement_years(statement) for statement in section.statements]
        # Lower bound: later than every earlier survey the section compares with, and
        # (a current section) than every dated section kept on the page.
        bound_years = [y for e in evidence for y in (*e.earlier, *e.since)] + dated_on_page
        lower = max(bound_years, default=None)

        def checked(year: int, basis: str, low: int | None = lower) -> tuple[int | None, str]:
            if (upper is not None and year > upper) or (low is not None and year <= low):
                return None, "conflict"
            return year, basis

        stated = {e.stated for e in evidence if e.stated is not None}
        earlier = [y for e in evidence for y in e.earlier]
        section_year: tuple[int | None, str]
        if index in current and from_title is not None:
            section_year = checked(from_title, "page_title")
        elif len(stated) == 1:
            section_year = checked(stated.pop(), "stated_year")
        elif len(stated) > 1:
            section_year = (None, "conflict")  # statements of one section disagree
        elif earlier:
            year, basis = checked(max(earlier) + 1, "comparison_year")
            if year is not None and index in current and window and year not in window:
                # The page's dates say another year than the comparison does: the page
                # may have been updated without new results, or the survey skipped a
                # year. Either could be; neither is a guess we make.
                year, basis = None, "conflict"
            section_year = (year, basis)
        elif index in current and window:
            possible = [y for y in window if (lower is None or y > lower)]
            possible = [y for y in possible if upper is None or y <= upper]
            if len(possible) == 1:
                section_year = (possible[0], window_basis)
            elif not possible:
                section_year = (None, "conflict")
            else:
                section_year = (None, "none")  # March to June, nothing to tell which
        else:
            section_year = (None, "none")
        rows = []
        for e in evidence:
            if e.stated is not None:
                # A finding's own stated year is the strongest evidence for its figure.
                rows.append(checked(e.stated, "stated_year", max(e.earlier, default=None)))
            else:
                rows.append(section_year)
        out.append(rows)
        if index == first_current:
            current_year, current_basis = section_year
    for index, section in enumerate(sections):
        if headed[index] is None and previous[index]:
            year = current_year - 1 if current_year is not None else None
            basis = current_basis if year is not None else "none"
            out[index] = [(year, basis)] * len(section.statements)
    return out
