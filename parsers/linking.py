"""Link national statements that ask the same survey question across years.

The pages reword a question from year to year: "22 procent av kommunerna har en aktuell
... rutin för hur handläggare ska säkra skolgången för barn i skyddat boende" (2019)
becomes "Det är fortfarande relativt få kommuner, 21 procent, som har en aktuell ..."
(2020). `normalize_statement` strips what changes with the year (figures, years, share
words, comparative openings, trend and comparison clauses) and keeps the question;
`link_statements` groups normalised statements within an area, exactly or by fuzzy
score, and records how each link was made. Pure: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz

from parsers.numbers import national_reading

#: Fuzzy score (rapidfuzz `fuzz.ratio` on normalised statements, 0-100) from which two
#: statements of one area are the same question. Chosen on the shipped pages, every
#: within-area pair checked by hand (tests/test_linking.py): rewordings of one question
#: score 78-100 (skolgång 2018 vs 2019: 87; "systematiskt följt upp resultaten" 2018 vs
#: 2019: 78), different questions at most 64 (the 2020 "gå tillväga vid indikation" and
#: skolgång routines, which share the long "har en aktuell skriftlig och på ledningsnivå
#: beslutad rutin för hur handläggare" frame). 72 sits in the middle of that gap.
FUZZY_THRESHOLD = 72.0

_SHARE = (
    r"(?:(?:cirka|ca\.?|drygt|knappt|nästan|över|omkring|runt|endast|bara)\s+)?"
    r"(?:\d+(?:[,.]\d+)?\s?(?:%|procent\b)"
    r"|(?:\d+|en|ett|två|tre|fyra|fem|sex|sju|åtta|nio|tio)\s+av\s+(?:\d+|tio|fem|fyra|tre)"
    r"|(?:en|två|tre)\s+(?:tredjedel|fjärdedel|femtedel|tiondel)(?:ar)?|hälften"
    r"|var(?:t)?\s?(?:annan|annat|tredje|fjärde|femte|tionde))"
)
# Sentences that only compare with another year: "Det är en ökning mot 21 procent av
# kommunerna 2020.", "Det kan jämföras med 39 procent 2020.", "I år är det 22 procent ...".
_COMPARISON_SENTENCE = re.compile(
    r"(?:^|(?<=[.!?]))\s*(?:det är en (?:ökning|minskning)|det kan jämföras|i år är det"
    r"|det är (?:en )?(?:fler|färre)|särskilt stor är)[^.!?]*[.!?]?",
    re.IGNORECASE,
)
_TREND_CLAUSE = re.compile(
    r",?\s*(?:vilket är en (?:ökning|minskning)|en (?:ökning|minskning) (?:med|från|mot))"
    r"[^.!?]*"
    r"|\s*(?:har|hade)?\s*(?:ökat|minskat)(?:\s+med\s+[^,.!?]*?procentenheter)?"
    r"|,?\s*från\s+\S+\s+till\s+\S+(?:\s+procent)?"
    r"|,?\s*(?:i jämförelse med|jämfört med|mot)\s+(?:föregående år|förra året|(?:19|20)\d\d)"
    r"|\s*(?:sedan|från)\s+(?:föregående år|förra året|(?:19|20)\d\d)",
    re.IGNORECASE,
)
# Openings that say how the share moved or how big it is, not what was asked.
_OPENING = re.compile(
    r"^(?:allt\s+)?(?:fler|färre|få|många|de flesta|flertalet|majoriteten(?: av)?|nästan alla"
    r"|alla|det är (?:fortfarande )?(?:relativt )?(?:få|många|fler|färre))"
    r"(?:\s+(?:av\s+)?(?:sveriges\s+|landets\s+)?kommuner(?:na)?)?\s*,?\s*(?:som\s+)?",
    re.IGNORECASE,
)
_MUNICIPALITIES = re.compile(
    r"\b(?:i\s+)?(?:av\s+)?(?:alla\s+|sveriges\s+|landets\s+)?kommuner(?:na)?"
    r"(?:\s+i\s+sverige)?\b\s*(?:uppger\s+att\s+de\s+)?",
    re.IGNORECASE,
)
# Connectives that tie a statement to the one before it: "Däremot har 4 av 5 kommuner
# inte ...", "Samtidigt saknar ...". They say nothing about the question.
_CONNECTIVE = re.compile(r"^(?:däremot|samtidigt|dock|men|även|också)\s+", re.IGNORECASE)
# The negation of a share stated for municipalities *without* the thing, and what the
# positive wording says in its place: "4 av 5 kommuner har inte en aktuell rutin" and "4 av
# 5 kommuner saknar en aktuell rutin" ask what "20 procent av kommunerna har en aktuell
# rutin" asks. Only the first one among the opening words is turned: later negations name
# the thing ("rutin för att inte röja skyddade personuppgifter").
_NEGATION = re.compile(
    r"\b(?P<word>inte|ej|icke|aldrig|saknar|saknade|saknas|ingen|inget|inga)\b\s*", re.IGNORECASE
)
_POSITIVE = {"saknar": "har ", "saknade": "hade ", "saknas": "finns ", "ingen": "en ",
             "inget": "ett "}  # fmt: skip
_NEGATION_WORDS = 6  # how far into the normalised question the share's negation can sit
_YEARS = re.compile(r"\b(?:19|20)\d\d\b")
_NUMBERS = re.compile(
    r"\b(?:cirka|ca\.?|drygt|knappt|nästan|över|under|omkring)?\s*\d+(?:[,.]\d+)?\b"
)
_LEFTOVER = re.compile(r"[()\[\],;:]|\s+(?=[.!?])")
_SPACE = re.compile(r"\s+")


def normalize_statement(statement: str) -> str:
    """The question a national statement is about, without what changes with the year."""
    text = statement.lower()
    text = _COMPARISON_SENTENCE.sub(" ", text)
    text = _TREND_CLAUSE.sub(" ", text)
    text = re.sub(_SHARE, " ", text, flags=re.IGNORECASE)
    text = _YEARS.sub(" ", text)
    text = _NUMBERS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    text = _OPENING.sub("", text)
    text = re.sub(r"^(?:,\s*)*(?:som\s+)?", "", text)  # "Det är ... få kommuner, 21 procent, som"
    text = _MUNICIPALITIES.sub(" ", text)
    text = _LEFTOVER.sub(" ", text)
    text = re.sub(r"\brespektive\b|\boch\s+(?=[.!?]|$)", " ", text)
    text = _SPACE.sub(" ", text).strip(" .,")
    text = _CONNECTIVE.sub("", text)
    if "national_share_negated" in national_reading(statement).flags:
        text = _positive(text)
    return text


def _positive(text: str) -> str:
    """The question of a negated share in its own (positive) sense: the first negation
    among the opening words dropped or turned ("har inte en rutin" -> "har en rutin",
    "saknar en rutin" -> "har en rutin", "finns ingen rutin" -> "finns en rutin")."""
    match = _NEGATION.search(text)
    if match is None or len(text[: match.start()].split()) >= _NEGATION_WORDS:
        return text
    replacement = _POSITIVE.get(match.group("word").lower(), "")
    return _SPACE.sub(" ", text[: match.start()] + replacement + text[match.end() :]).strip()


def score(a: str, b: str) -> float:
    """Similarity of two normalised statements, 0-100."""
    return float(fuzz.ratio(a, b))


@dataclass(frozen=True)
class Occurrence:
    """One normalised statement of an area, with where it was printed."""

    normalized: str
    first_year: int  # earliest survey year it was seen with (9999 when unknown)
    places: frozenset[tuple[str, str]]  # (snapshot_id, section): bullets it was printed as


@dataclass(frozen=True)
class Link:
    normalized: str
    group: int  # index of the indicator within the area, in order of founding
    method: str  # "exact" (founded it or same text), "fuzzy", "override"
    score: float  # 100 for exact; the fuzzy score; 100 for override
    linked_to: str  # the normalised statement it was linked to


def link_statements(
    occurrences: Iterable[Occurrence],
    *,
    same: Iterable[tuple[str, str]] = (),
    different: Iterable[tuple[str, str]] = (),
    threshold: float = FUZZY_THRESHOLD,
) -> dict[str, Link]:
    """Group the normalised statements of one area into indicators.

    Oldest first, each statement joins the group of its best-scoring earlier statement
    when the score reaches `threshold`, unless that group already holds a statement
    printed in the same snapshot and section (two bullets of one block are two questions)
    or an override says the two differ. Overrides in `same` (pairs of normalised
    statements) are applied first and win over the matcher.
    """
    ordered = sorted(occurrences, key=lambda o: (o.first_year, o.normalized))
    different_pairs = {frozenset(pair) for pair in different}
    links: dict[str, Link] = {}
    groups: list[list[Occurrence]] = []
    group_of: dict[str, int] = {}

    def can_join(occurrence: Occurrence, group: int) -> bool:
        for member in groups[group]:
            if member.places & occurrence.places:
                return False
            if frozenset((member.normalized, occurrence.normalized)) in different_pairs:
                return False
        return True

    by_text = {o.normalized: o for o in ordered}
    for a, b in same:
        if a in by_text and b in by_text and a not in group_of and b not in group_of:
            group_of[a] = group_of[b] = len(groups)
            groups.append([by_text[a], by_text[b]])
            first, second = sorted(
                (by_text[a], by_text[b]), key=lambda o: (o.first_year, o.normalized)
            )
            links[first.normalized] = Link(
                first.normalized, group_of[a], "exact", 100.0, first.normalized
            )
            links[second.normalized] = Link(
                second.normalized, group_of[a], "override", 100.0, first.normalized
            )
        elif a in group_of and b in by_text and b not in group_of:
            group_of[b] = group_of[a]
            groups[group_of[a]].append(by_text[b])
            links[b] = Link(b, group_of[a], "override", 100.0, a)
        elif b in group_of and a in by_text and a not in group_of:
            group_of[a] = group_of[b]
            groups[group_of[b]].append(by_text[a])
            links[a] = Link(a, group_of[b], "override", 100.0, b)

    for occurrence in ordered:
        text = occurrence.normalized
        if text in links:
            continue
        best: tuple[float, str] | None = None
        for other, group in group_of.items():
            candidate = score(text, other)
            if (
                candidate >= threshold
                and (best is None or candidate > best[0])
                and can_join(occurrence, group)
            ):
                best = (candidate, other)
        if best is not None:
            group = group_of[best[1]]
            groups[group].append(occurrence)
            group_of[text] = group
            links[text] = Link(text, group, "fuzzy", round(best[0], 1), best[1])
        else:
            group_of[text] = len(groups)
            groups.append([occurrence])
            links[text] = Link(text, group_of[text], "exact", 100.0, text)
    return links


def question_label(statement: str, width: int = 90) -> str:
    """The question a statement asks, short enough for one line of a report.

    The normalised question (no figures, years or opening: "Det är fortfarande relativt
    få kommuner, 21 procent, som har en ..." is about what comes after "som"), cut in
    the middle when too long: the words that tell questions apart sit at the end more
    often than not ("har en aktuell skriftlig och på ledningsnivå beslutad rutin för hur
    handläggare ska säkra skolgången för barn i skyddat boende": the skolgång routine),
    so the label keeps a short head and a long tail: "har en aktuell skriftlig … säkra
    skolgången för barn i skyddat boende".
    """
    question = normalize_statement(statement) or _SPACE.sub(" ", statement).strip()
    if len(question) <= width:
        return question
    words = question.split()
    head: list[str] = []
    for word in words[:4]:
        if len(" ".join([*head, word])) > width // 3:
            break
        head.append(word)
    tail: list[str] = []
    room = width - len(" ".join(head)) - 3
    for word in reversed(words[len(head) :]):
        if len(" ".join([word, *tail])) > room:
            break
        tail.insert(0, word)
    return " ".join(head) + " … " + " ".join(tail)
