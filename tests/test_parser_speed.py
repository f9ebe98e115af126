"""The number grammar's fast paths (issue 21 item 7) read exactly what its patterns read.

parsers/numbers.py looks at a statement with substring tests on `text.lower()` before it
runs a case-insensitive pattern, and splits `_PERCENT` into a figure and a word pattern.
Both are speed only: these tests hold them to the plain regex path.
"""

from __future__ import annotations

import re
from re import _casefix  # type: ignore[attr-defined]

import pytest

from parsers import numbers

# Statements as the pages print them, and the shapes the fast paths decide on: number
# words, "av" with and without a figure after it, changes and earlier figures before a
# level, purpose phrases, and the characters re.IGNORECASE matches with a letter that
# str.lower() does not turn into it.
STATEMENTS = [
    "63 procent av kommunerna har en aktuell rutin.",
    "Andelen har ökat från 31 procent 2017 till 54 procent 2020.",
    "Det är en ökning i jämförelse med 2021 då det var 49 procent.",
    "Cirka 7 av 10 kommuner har en plan, jämfört med 58 procent 2019.",
    "Fem procent av kommunerna saknar rutin för att inte röja personuppgifter.",
    "FEM PROCENT, TRE % och sex procent; en av fem kommuner; två tredjedelar.",
    "Var tionde kommun saknar rutin. Hälften av kommunerna, 50 procent, har den.",
    "Mellan 12 och 30 procent beroende på målgrupp; 3–9 procent; 62, 55 och 40 procent.",
    "Minskat med 5 procent till 22 procent, mot 40 procent 2019, fler än 50 procent.",
    "ſju procent; ſex procent; 4 av 5 kommuner; ÖKNING MED 4 procent; FRÅN 3 till 5 procent",
    "Kommunerna (\u212a) har 12 procent; \u0130 ökning med 3 procent; ı från 2 procent",
    "Antalet är 4\u00a0av\u00a05; en\tav\ttio; en av  fem; fyra\u00a0procent; 7%",
    "Fler än 50 procent av kommunerna har en rutin, förra året 40 procent.",
    "Andelen är 30 procent, var det 20 procent? Då det var 10 procent minskade den.",
    "18 procent av kommunerna har rutiner om hur man ska arbeta så att inget missas.",
]


def _variants(text: str) -> list[str]:
    return [text, text.upper(), text.lower(), text.replace(" ", "\u00a0")]


@pytest.mark.parametrize("text", STATEMENTS)
def test_percent_patterns_split_find_what_the_joint_pattern_finds(text: str) -> None:
    for variant in _variants(text):
        joint = [(m.span(), m["num"] or m["word"]) for m in numbers._PERCENT.finditer(variant)]
        split = sorted(
            [(m.span(), m["num"]) for m in numbers._PERCENT_FIGURE.finditer(variant)]
            + [(m.span(), m["word"]) for m in numbers._PERCENT_WORD.finditer(variant)]
        )
        assert split == joint, variant


def _readings(text: str) -> tuple[object, ...]:
    numbers.find_levels.cache_clear()
    numbers.stated_levels.cache_clear()
    numbers.national_reading.cache_clear()
    numbers.local_value.cache_clear()
    try:
        return (
            numbers.find_levels(text),
            numbers.national_reading(text),
            numbers.local_value(text),
        )
    except ValueError as error:  # "ſju" reads as a number word but is no key: as before
        return (repr(error),)


@pytest.mark.parametrize("text", STATEMENTS)
def test_substring_first_looks_change_no_reading(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = [_readings(variant) for variant in _variants(text)]
    # Every text taken for one with odd-case characters: the patterns scan it all.
    monkeypatch.setattr(numbers, "_plain_case", lambda text: False)
    slow = [_readings(variant) for variant in _variants(text)]
    monkeypatch.undo()
    _readings("")  # leave no reading of the slow path in the caches
    assert fast == slow
    assert any(reading != ((), numbers.NationalReading(None, (), ()), None) for reading in fast)


@pytest.mark.parametrize(
    "text", STATEMENTS + ["12 procent arbetar så att inget missas", "i syfte att"]
)
def test_purpose_phrase_cut_as_the_pattern_cuts(text: str) -> None:
    for variant in _variants(text):
        assert numbers._purpose_cut(variant) == numbers._PURPOSE_TAIL.sub("", variant)


def test_odd_case_characters_are_every_one_the_patterns_can_meet() -> None:
    """`_ODD_CASE` holds every character re.IGNORECASE matches with a letter the number
    grammar's patterns use but str.lower() does not lower to that letter (from the regex
    module's own table of extra case equivalents), and every character whose lower case is
    longer than one character among them."""
    letters = "abcdefghijklmnopqrstuvwxyzåäöéü"
    odd = set()
    for letter in letters:
        for code in _casefix._EXTRA_CASES.get(ord(letter), ()):
            if chr(code).lower() != letter:
                odd.add(chr(code))
        for char in (letter.upper(), letter):
            for code in _casefix._EXTRA_CASES.get(ord(char), ()):
                if chr(code).lower() not in (letter, char):
                    odd.add(chr(code))
    assert odd, "the table of extra cases is where this test looks"
    assert all(numbers._ODD_CASE.fullmatch(char) for char in odd), sorted(odd)
    assert numbers._ODD_CASE.fullmatch("\u0130")  # "İ".lower() is two characters
    for char in "İıſ\u212a\u212b":
        assert not numbers._plain_case(f"12 procent {char}")
    assert numbers._plain_case("Åtta av tio kommuner, 80 procent, ökade")
    assert re.fullmatch("s", "ſ", re.IGNORECASE)  # why: the substring test misses it


def test_finding_rebuilt_as_dataclasses_replace_rebuilds_it() -> None:
    """parsers/page.py rebuilds findings through the slots' setters, skipping __init__:
    right only while `Finding` has no __post_init__ to run."""
    import dataclasses
    from datetime import date

    from parsers.page import _with
    from parsers.records import Finding

    assert not hasattr(Finding, "__post_init__")
    finding = Finding(
        "https://example.org/oj", "Kalmar", "Äldreomsorg", date(2020, 7, 2), None,
        "Resultat visar att:", None, "none", 1, "63 procent av kommunerna", 63.0, (63.0,),
        None, "I Kalmar finns en rutin.", "yes", None, ("no_local_answer",),
    )  # fmt: skip
    changes = {"survey_year": 2020, "survey_year_basis": "heading", "position": 7}
    for name, value in changes.items():
        rebuilt = _with(finding, **{name: value})
        assert rebuilt == dataclasses.replace(finding, **{name: value})
        assert getattr(rebuilt, name) == value and getattr(finding, name) != value
    both = _with(finding, **changes)
    assert both == dataclasses.replace(finding, **changes)
    assert hash(both) == hash(dataclasses.replace(finding, **changes))
    assert repr(both) == repr(dataclasses.replace(finding, **changes))


# --- local answer openers -----------------------------------------------------------------

# Shapes around a name that open an answer or nearly do: "I Kalmar", "Kalmars kommun
# har", "Under 2020 hade Kalmar", a glued answer ("2019I Kalmar"), compounds
# ("Norra-Kalmar"), the name inside a longer word, twice, and at the very end.
OPENER_SHAPES = [
    "I {n} finns en rutin.", "I {n}s kommun saknas den.", "{n}s kommun har en plan.",
    "{n} saknar rutin.", "{n} kommun  har 12 procent.", "Under 2020 har {n} ingen plan.",
    "Under 2019 hade {n}s nämnd", "Under 2021 är {n}x", "Under 1999 var {n}",
    "minskat till 36 procent 2019I {n} har 19 procent", "boende. I {n} finns – {n} har",
    "Norra-{n} har en", "{n}{n} har", "I {n}", "{n}s", "{n} ", "I {n}_a har", "I {n}2 har",
    "I {n}s2", "Unders 2020 har {n}", "I Sverige har {n} en", "i {n} finns", "I {n}sk",
    "I Mora finns, I {n} saknas, {n} har.", "{n} 12 procent", "{n} Kommun har",
]


def _reference_opener(name: str) -> re.Pattern[str]:
    """The alternation `AnswerOpener` answers for, compiled as it once was per name."""
    from parsers.layouts import pairs

    return re.compile(rf"(?:{pairs.own_opener_pattern(name)}|{pairs._GENERIC_OPENER})")


def test_answer_openers_find_what_the_compiled_pattern_finds() -> None:
    # Speed (issue 21 item 7): a pattern compiled for each of the 290 names took ~8 % of
    # parsing 2,000 pages; the opener now finds a name's alternatives from where the
    # name occurs. Every name, in every shape, and the shapes run together.
    from parsers.layouts import pairs
    from parsers.municipalities import MUNICIPALITIES

    for name in MUNICIPALITIES:
        reference, opener = _reference_opener(name), pairs.answer_opener(name)
        texts = [shape.format(n=name) for shape in OPENER_SHAPES]
        texts.append(" ".join(texts))
        for text in texts:
            assert opener.match(text) == bool(reference.match(text)), (name, text)
            expected = [found.start() for found in reference.finditer(text)]
            assert list(opener.starts(text)) == expected, (name, text)


def test_answer_openers_agree_with_the_pattern_on_random_texts() -> None:
    # Pieces run together at random (fixed seed): overlapping names, a name right after
    # "Under 2020 har " and "I ", an "s" or a word character right after it.
    import random

    from parsers.layouts import pairs

    rng = random.Random(21)
    for name in ("Kalmar", "Upplands Väsby", "Malung-Sälen", "Ale", "Åre", "Säter"):
        reference, opener = _reference_opener(name), pairs.answer_opener(name)
        pieces = [name, name[:2], name[1:], "I ", "s", " ", "Under 2020 har ", "Under 2019 är ",
                  "kommun ", "har", "x", "_", "7", ".", "-", "Mora", "\u00a0", "ö"]  # fmt: skip
        for _ in range(400):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
            assert opener.match(text) == bool(reference.match(text)), (name, text)
            expected = [found.start() for found in reference.finditer(text)]
            assert list(opener.starts(text)) == expected, (name, text)
