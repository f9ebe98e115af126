"""Page shapes the five seeds do not show, as short real-looking lines.

Each case says which quirk of the source pages it stands for.
"""

from __future__ import annotations

from datetime import date

from parsers import parse_page

PAGE_END = (
    "\nFler sidor inom jämförelser\n\nSenast uppdaterad: 2 juli 2020\nPublicerad: 3 juli 2017"
)


def page(body: str, title: str = "Ekonomiskt bistånd") -> str:
    return f"{title}\n\nÖppna jämförelser {title.lower()} bygger på enkäter.\n\n{body}{PAGE_END}"


def test_answer_glued_to_statement_without_separator() -> None:
    # Kalmar's 2020 Ekonomiskt bistånd page lost the line break: "... 2019I Kalmar har ..."
    parsed = parse_page(
        page(
            "Årets resultat visar att:\n"
            " • Andelen med långvarigt bistånd har minskat från 39 till 36 procent 2019"
            "I Kalmar har 19 procent av biståndsmottagarna långvarigt bistånd.\n"
        )
    )
    (finding,) = parsed.findings
    assert finding.national_statement.endswith("till 36 procent 2019")
    assert (
        finding.local_answer == "I Kalmar har 19 procent av biståndsmottagarna långvarigt bistånd."
    )
    assert finding.national_percent == 36
    assert finding.local_value == 19
    assert (finding.survey_year, finding.survey_year_basis) == (2019, "stated_year")
    assert "answer_glued" in finding.flags


def test_answer_that_opens_with_under_year() -> None:
    # Answers do not always open with the municipality: "Under 2020 har Kalmar ..."
    parsed = parse_page(
        page(
            "Årets resultat visar att:\n"
            " • 45 procent av kommunerna har en plan.\n"
            "  Under 2020 har Kalmar tagit fram en plan.\n"
            " • 30 procent av kommunerna har en rutin.\n"
            "  Handläggarna har ingen rutin.\n"
        ),
    )
    first, second = parsed.findings
    assert first.local_answer == "Under 2020 har Kalmar tagit fram en plan."
    assert second.local_answer == "Handläggarna har ingen rutin."  # no municipality named
    assert second.local_status == "no"


def test_bullet_without_answer_gets_none_and_a_flag() -> None:
    # The last bullet of a block sometimes has no local answer: never invent one.
    parsed = parse_page(
        page(
            "Årets resultat visar att:\n"
            " • 45 procent av kommunerna har en plan.\n"
            "  I Kalmar finns en plan.\n"
            " • 30 procent av kommunerna har en rutin.\n"
        )
    )
    assert parsed.findings[1].local_answer is None
    assert parsed.findings[1].local_status is None
    assert parsed.findings[1].flags == ("no_local_answer",)


def test_heading_variants_and_survey_year_bases() -> None:
    # "bland annat", stray spaces and a no-break space are the same heading family.
    parsed = parse_page(
        page(
            "Årets  resultat visar bland annat att :\n"
            " • 45 procent av kommunerna har en plan, i jämförelse med 2019.\n  I Kalmar finns en plan.\n"
            "2019\u00a0års resultat visar att:\n"
            " • 30 procent av kommunerna har en rutin.\n  Kalmar saknar rutin.\n"
            "Årets resultat visar att:\n"
            " • 20 procent av kommunerna har en rutin.\n  Kalmar har en rutin.\n"
        )
    )
    sections = [(f.section, f.survey_year, f.survey_year_basis) for f in parsed.findings]
    assert sections == [
        # the comparison year agrees with the page's date (updated in July 2020)
        ("Årets resultat visar bland annat att :", 2020, "comparison_year"),
        ("2019 års resultat visar att:", 2019, "heading"),
        # a second "Årets" block: the page's date speaks for the first one only, and this
        # one has no evidence of its own
        ("Årets resultat visar att:", None, "none"),
    ]


def test_survey_year_falls_back_to_capture_then_none() -> None:
    body = "Ekonomiskt bistånd\n\nÅrets resultat visar att:\n • 45 procent av kommunerna har en plan.\n  I Kalmar finns en plan.\n"
    captured = parse_page(body, captured_at=date(2021, 9, 1)).findings[0]
    assert (captured.survey_year, captured.survey_year_basis) == (2021, "captured_at")
    # captured in March: the page may still show the previous year's results
    spring = parse_page(body, captured_at=date(2021, 3, 1)).findings[0]
    assert (spring.survey_year, spring.survey_year_basis) == (None, "none")
    unknown = parse_page(body).findings[0]
    assert (unknown.survey_year, unknown.survey_year_basis) == (None, "none")


def test_wrapped_text_extract() -> None:
    # Extracts from text browsers wrap long paragraphs; the answer still starts a new line.
    parsed = parse_page(
        page(
            "Årets resultat visar att:\n"
            "   * 63 procent av kommunerna har en aktuell skriftlig och på\n"
            "     ledningsnivå beslutad rutin.\n"
            "     I Kalmar finns en rutin för hur handläggare ska gå\n"
            "     tillväga.\n"
        )
    )
    (finding,) = parsed.findings
    assert finding.national_statement == (
        "63 procent av kommunerna har en aktuell skriftlig och på ledningsnivå beslutad rutin."
    )
    assert finding.local_answer == "I Kalmar finns en rutin för hur handläggare ska gå tillväga."


def test_page_without_results_is_a_reject_not_an_error() -> None:
    parsed = parse_page("Kontakta kommunen\n\nRing 0480-45 00 00 för frågor om bistånd.\n")
    assert parsed.findings == ()
    assert [r.reason for r in parsed.rejects] == ["no_results_section"]


def test_unattached_paragraph_and_empty_section_are_kept_as_rejects() -> None:
    parsed = parse_page(
        page(
            "2019 års resultat visar att:\n"
            " • 45 procent av kommunerna har en plan.\n"
            "  I Kalmar finns en plan.\n"
            "  Planen revideras årligen av nämnden.\n"
            "2018 års resultat visar att:\n"
        )
    )
    assert len(parsed.findings) == 1
    assert [(r.reason, r.text) for r in parsed.rejects] == [
        ("unattached_paragraph", "Planen revideras årligen av nämnden."),
        ("empty_section", "2018 års resultat visar att:"),
    ]


def test_answer_printed_as_a_bullet_of_its_own() -> None:
    # Some pages bullet the answer too: it is attached to the statement above, flagged.
    parsed = parse_page(
        page(
            "Årets resultat visar att:\n"
            " • 45 procent av kommunerna har en plan.\n"
            " • I Kalmar finns en plan.\n"
            " • 30 procent av kommunerna har en rutin.\n"
            " • Kalmar saknar rutin.\n"
        )
    )
    assert [(f.local_answer, f.flags) for f in parsed.findings] == [
        ("I Kalmar finns en plan.", ("answer_as_bullet",)),
        ("Kalmar saknar rutin.", ("answer_as_bullet",)),
    ]


HTML_HEAD = (
    "<!DOCTYPE html><html lang='sv'><head><title>Hemlöshet - Kalmar kommun</title></head><body>"
    "<nav><ul><li><a href='/'>Årets resultat visar att:</a></li><li>45 procent</li></ul></nav>"
)


def test_html_bullets_inside_one_paragraph_with_br() -> None:
    # "•" inside <p>, several bullet pairs in one paragraph split by <br>.
    html = HTML_HEAD + (
        "<main><h1>Hemlöshet</h1><div class='sv-alert'>Begränsa smittspridningen av covid-19</div>"
        "<h2>Årets resultat visar att:</h2>"
        "<p>• 45 procent av kommunerna har en plan.<br>I Kalmar finns en plan.<br>"
        "•&nbsp;30 procent av kommunerna har en rutin.<br>Kalmar saknar rutin.</p>"
        "<p>Senast uppdaterad: <time>9 januari 2023</time></p></main></body></html>"
    )
    parsed = parse_page(html)
    assert (parsed.area, parsed.municipality, parsed.page_updated) == (
        "Hemlöshet",
        "Kalmar",
        date(2023, 1, 9),
    )
    assert [(f.national_percent, f.local_status) for f in parsed.findings] == [
        (45, "yes"),
        (30, "no"),
    ]


def test_html_nested_list_answer_and_no_main_element() -> None:
    # Older templates have no <main>; some put the answer in a nested list.
    html = (
        "<html><head><title>Hemlöshet - Kalmar kommun</title></head><body>"
        "<div class='menu'><ul><li>Start</li></ul></div><div id='content'><h1>Hemlöshet</h1>"
        "<p><strong>2021 års resultat visar att:</strong></p>"
        "<ul><li>45 procent av kommunerna har en plan.<ul><li>I Kalmar finns en plan.</li></ul>"
        "</li></ul></div><footer><ul><li>Kontakt 45 procent</li></ul></footer></body></html>"
    )
    (finding,) = parse_page(html).findings
    assert (finding.survey_year, finding.local_answer) == (2021, "I Kalmar finns en plan.")
    assert finding.flags == ("answer_as_bullet",)


def test_html_without_h1_takes_the_area_from_the_title() -> None:
    html = (
        "<html><head><title>Hemlöshet - Kalmar kommun</title></head><body><main>"
        "<h2>Årets resultat visar att:</h2><ul><li>45 procent av kommunerna har en plan."
        "<br>I Kalmar finns en plan.</li></ul></main></body></html>"
    )
    assert parse_page(html).area == "Hemlöshet"


def test_windows_1252_text_without_charset() -> None:
    # Older municipal pages come as Windows-1252 with no declared charset.
    data = page(
        "2019 års resultat visar att:\n • 45 procent av kommunerna har en plan – en ökning.\n"
        "  I Kalmar finns en plan.\n"
    ).encode("cp1252")
    parsed = parse_page(data)
    assert parsed.charset == "cp1252"
    assert parsed.area == "Ekonomiskt bistånd"
    assert parsed.findings[0].national_statement.endswith("en plan – en ökning.")


def test_same_input_same_output() -> None:
    text = page("2019 års resultat visar att:\n • 45 procent av kommunerna har en plan.\n")
    assert parse_page(text) == parse_page(text)


def test_wider_heading_family_and_answer_in_the_same_paragraph() -> None:
    # Headings seen on other municipalities' pages; answers run on in the same <li>,
    # after a sentence end or a dash, sometimes in <em>.
    html = (
        "<html><head><title>Hemlöshet - Kalmar kommun</title></head><body><main><h1>Hemlöshet</h1>"
        "<h3>Resultaten från 2019 års undersökning visar att:</h3>"
        "<ul><li>45 procent av kommunerna har en plan. <em>I Kalmar finns en plan.</em></li>"
        "<li>Sex av tio kommuner har en rutin – Kalmar saknar rutin.</li></ul>"
        "<h3>Öppna jämförelser 2021 visar att:</h3>"
        "<ul><li>Varannan kommun har en rutin.<br>Kalmar kommun har en rutin.</li></ul>"
        "<p>Resultatet visar att fler kommuner har rutiner än tidigare.</p>"
        "</main></body></html>"
    )
    parsed = parse_page(html)
    assert [
        (f.survey_year, f.national_statement, f.national_percent, f.local_answer, f.flags)
        for f in parsed.findings
    ] == [
        (
            2019,
            "45 procent av kommunerna har en plan.",
            45,
            "I Kalmar finns en plan.",
            ("answer_in_statement",),
        ),
        (
            2019,
            "Sex av tio kommuner har en rutin",
            60,
            "Kalmar saknar rutin.",
            ("answer_in_statement",),
        ),
        (2021, "Varannan kommun har en rutin.", 50, "Kalmar kommun har en rutin.", ()),
    ]
    # The closing sentence is not a heading: it is kept as an unattached paragraph.
    assert [r.reason for r in parsed.rejects] == ["unattached_paragraph"]


def test_heading_and_first_bullet_on_one_line() -> None:
    parsed = parse_page(
        page(
            "2019 års resultat visar att: • 45 procent av kommunerna har en plan.\n"
            "  I Kalmar finns en plan.\n"
        )
    )
    assert [(f.section, f.local_answer) for f in parsed.findings] == [
        ("2019 års resultat visar att:", "I Kalmar finns en plan.")
    ]


# The content region is parsed with a plain etree parser and walked from the element
# lxml.html.fromstring would return (parsers.lines._fragment_root). Region shapes where
# fromstring picks a different element, or merges elements, must give the same lines as
# walking fromstring's own tree.
_REGIONS = [
    # one element: fromstring returns it
    "<main><h1>Hemlöshet</h1><p>Årets resultat visar att:</p><ul><li>A 3 procent</li></ul></main>",
    # text around the element: fromstring returns <body> renamed <div>
    "före <main><h1>H</h1><ul><li>A</li></ul></main> efter",
    # inline content only: <body> renamed <span>
    "<b>Årets resultat visar att:</b> <i>text</i>",
    # a <title> in the region: libxml2 builds a <head>, fromstring returns the document
    "<p>före</p><title>T</title><main><h1>H</h1><p>x</p></main>",
    # a second <body> (a template pasted into the content column): fromstring merges them,
    # running the second body's text on after the first body's last tail without a break
    "<main><p>Årets resultat visar att:</p><b>x</b>slut</main></body><body>ny text<ul><li>B</li>"
    "</ul></body>",
    "<body><p>ett</p><b>x</b>svans</body><body>två<p>tre</p></body>",
    # a full document: fromstring returns its root
    "<!DOCTYPE html><html><body><main><h1>H</h1><ul><li>A</li></ul></main></body></html>",
]


def test_region_walk_matches_lxml_html_fromstring() -> None:
    import lxml.html

    from parsers.lines import _LineCollector, _walk, html_lines_checked

    for region in _REGIONS:
        out = _LineCollector()
        _walk(lxml.html.fromstring(region, parser=lxml.html.HTMLParser()), out)
        out.flush()
        lines, h1, too_deep = html_lines_checked(region, whole_page=True)
        assert (lines, h1, too_deep) == (out.lines, out.h1, False), region
        assert lines, region


def test_letters_a_case_insensitive_match_equates_are_read_not_crashed_on() -> None:
    # Python's case-insensitive patterns match "ſ" (long s) with "s", "K" (Kelvin) with
    # "k", "ı"/"İ" with "i": "ſju procent" matched the number word "sju", and the word
    # table did not know "ſju" (ValueError: the page failed). Read as the word it matched.
    parsed = parse_page(
        page(
            "Senast uppdaterad: 3 ſeptember 2020\n\n"
            "2019 års resultat visar att:\n"
            " • ſju procent av kommunerna har en rutin för ekonomiskt bistånd.\n"
            "I Kalmar finns en rutin.\n"
            " • En fjärdedel av kommunerna har en plan.\n"
            "Kalmar saknar en plan.\n"
        )
    )
    first, second = parsed.findings
    assert (first.national_percent, second.national_percent) == (7.0, 25.0)
    assert first.page_updated == date(2020, 9, 3)
