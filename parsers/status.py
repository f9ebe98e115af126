"""Classify a local answer as yes / no / partial / unknown.

The answer is cut into clauses (sentences, and "..., men ..." / "dock" turns); each clause
is negative (it contains a negation), positive (it has a verb of having or doing), or
neither. Both kinds in one answer, or an explicit marker of incompleteness, make it
partial: "I Kalmar finns en rutin (...), men denna är inte uppdaterad." A figure with no
negation ("I Kalmar har 100% av handläggarna socionomexamen.") is `unknown`: it answers
"how much", not "whether".
"""

from __future__ import annotations

import re
from functools import lru_cache

from parsers.numbers import _plain_case

_CLAUSE_SPLIT = re.compile(r"(?<=[.!?;])\s+|,?\s+(?:men|dock|däremot|medan)\s+", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(?:inte|ej|icke|ingen|inget|inga|saknar|saknas|saknade|aldrig|nej)\b", re.IGNORECASE
)
# A negation right after "att" sits in an infinitive that names the thing, not in the
# answer: "Kalmar har en rutin för att inte röja skyddade personuppgifter" is a yes.
_NAMED_NEGATION = re.compile(r"\b(?:att|om att|så att)\s+(?:inte|ej|aldrig)\b", re.IGNORECASE)
# Answers that are neither yes nor no: the municipality did not answer, or the text
# points elsewhere ("Uppgift saknas.", "Kalmar har inte besvarat frågan.", "Se ...").
# Each marker contains one of the keys of `_holds_no_answer_key`, so a substring test can
# rule most answers out before the regex runs; the openers are tested at the start only.
_NO_ANSWER = re.compile(
    r"\b(?:uppgift saknas|uppgifter saknas|ingen uppgift|data saknas|vet ej|vet inte"
    r"|(?:inte|ej) (?:besvarat|svarat|redovisat|rapporterat)|besvarades inte|besvarade inte"
    r"|svarade inte|deltog inte|ej deltagit|inte deltagit)\b",
    re.IGNORECASE,
)
_POINTS_ELSEWHERE = re.compile(r"^\s*(?:se|läs|kontakta|besök|klicka)\b", re.IGNORECASE)
_POSITIVE = re.compile(
    r"\b(?:har|hade|finns|fanns|ja|erbjuder|erbjuds|använder|används|använt|bedriver|bedrivs"
    r"|arbetar|görs|gör|gjort|gjorts|får|fått|genomför|genomförs|genomfört|genomförts|tillämpar"
    r"|tillämpas|följer|följs|sker|ingår|erhåller|ges|ger|tar|tas|är)\b",
    re.IGNORECASE,
)
# Markers that the thing exists only in part, or is under way.
_PARTIAL = re.compile(
    r"\b(?:delvis|påbörja\w*|pågår|pågående|håller på|under framtagande|under utveckling"
    r"|under arbete|planeras|planerar|förutom|med undantag|utom för|i vissa|vissa delar"
    r"|till viss del|inte fullt ut|inte helt|för vissa|vissa grupper|inte alla|inte för alla"
    r"|en del av|inaktuell\w*|behöver (?:uppdateras|revideras|ses över|aktualiseras)"
    r"|(?:inte|ej)\s+(?:är\s+|längre\s+)?(?:uppdaterad\w*|aktuell\w*|reviderad\w*))\b",
    re.IGNORECASE,
)
# Swedish puts the finite verb second: after the municipality or an opening adverbial
# comes the verb, whatever verb it is ("Kalmar informerar alla ...", "I Kalmar erbjuds
# samtalsstöd ...", "Här gör man en kartläggning varje år", "Under 2020 har Kalmar ...").
_VERB_SECOND = re.compile(
    r"^\s*(?:(?:I|Inom|Under|Sedan|Hos|För|Från|Efter)\s+[\wåäöÅÄÖ-]+|Här|Vi|Man|Det"
    r"|[A-ZÅÄÖ][\wåäöéü-]+)\s+(?P<verb>[a-zåäö]{2,})\b"
)
_NOT_A_VERB = frozenset(
    [
        "och",
        "i",
        "på",
        "för",
        "med",
        "som",
        "av",
        "till",
        "om",
        "en",
        "ett",
        "den",
        "det",
        "de",
        "att",
        "inte",
        "ej",
        "samt",
        "eller",
        "från",
        "vid",
        "hos",
        "under",
        "efter",
        "över",
        "kommun",
        "kommuns",
        "stad",
    ]
)
_OPENING_YES = re.compile(r"^\s*ja\b", re.IGNORECASE)
_OPENING_NO = re.compile(r"^\s*nej\b", re.IGNORECASE)


@lru_cache(maxsize=16384)  # pure: the same answers recur across captures of a page
def local_status(answer: str | None, value: float | None) -> str | None:
    """`yes`, `no`, `partial` or `unknown` for a local answer; None when there is none."""
    if not answer or not answer.strip():
        return None
    lowered = answer.lower()
    if _POINTS_ELSEWHERE.match(answer) or (
        _holds_no_answer_key(lowered) and _NO_ANSWER.search(answer)
    ):
        return "unknown"
    if _OPENING_PARTIAL.match(answer):
        return "partial"
    # Substring first looks on the lowered answer (exact where `_plain_case`, see
    # parsers/numbers.py) rule out the case-insensitive scans of most answers: each
    # pattern below holds one of its keys in every alternative.
    plain = _plain_case(answer)
    if not plain or "att" in lowered:
        named = _NAMED_NEGATION.sub("att", answer)
        if named != answer:
            answer, lowered = named, named.lower()
    negations = not plain or _holds_negation_key(lowered)
    partial = not plain or _holds_partial_key(lowered)
    if _OPENING_NO.match(answer) and not (partial and _PARTIAL.search(answer)):
        return "no"
    if _OPENING_YES.match(answer) and not (negations and _NEGATION.search(answer)):
        return "yes"
    if _may_split(answer, lowered):
        clauses = [clause for clause in _CLAUSE_SPLIT.split(answer) if clause and clause.strip()]
    else:  # one clause: most answers are one sentence ("Kalmar har en kontinuitetsplan.")
        clauses = [answer]
    negative = positive = False
    for clause in clauses:
        if negations and _NEGATION.search(clause):
            negative = True
        elif _POSITIVE.search(clause) or _affirms(clause):
            positive = True
    if (positive or negative) and partial and _PARTIAL.search(answer):
        return "partial"
    if negative and positive:
        return "partial"
    if value is not None and not negative:
        return "unknown"
    if negative:
        return "no"
    if positive:
        return "yes"
    return "unknown"


# Substring tests as chains of `in` (no generator: they run for every answer).


def _holds_no_answer_key(lowered: str) -> bool:
    return (
        "uppgift" in lowered or "data saknas" in lowered or "vet " in lowered
        or "svara" in lowered or "redovisat" in lowered or "rapporterat" in lowered
        or "deltog" in lowered or "deltagit" in lowered
    )  # fmt: skip


def _holds_negation_key(lowered: str) -> bool:
    # A key every alternative of `_NEGATION` holds ("inga" and "ingen"/"inget" share "ing").
    return (
        "inte" in lowered or "ej" in lowered or "icke" in lowered or "ing" in lowered
        or "sakna" in lowered or "aldrig" in lowered
    )  # fmt: skip


def _holds_partial_key(lowered: str) -> bool:
    # A key every alternative of `_PARTIAL` holds ("förutom"/"utom för": "utom", "i vissa"/
    # "till viss del": "viss", "under framtagande": "under ").
    return (
        "delvis" in lowered or "påbörja" in lowered or "pågå" in lowered
        or "håller på" in lowered or "under " in lowered or "planera" in lowered
        or "utom" in lowered or "undantag" in lowered or "viss" in lowered
        or "inte" in lowered or "ej" in lowered or "en del av" in lowered
        or "inaktuell" in lowered or "behöver" in lowered
    )  # fmt: skip


def _may_split(answer: str, lowered: str) -> bool:
    """Can `_CLAUSE_SPLIT` cut `answer` (`lowered`: its `str.lower()`)? Only at ".", "!",
    "?" or ";" before whitespace, which needs one of them before the last non-space
    character (a split after the last one leaves an empty clause, dropped), or at one of
    its turn words. None of those words holds an "s" or an "i", which `re.IGNORECASE`
    also matches as "ſ" and "ı" (characters `str.lower()` leaves as they are), so a
    substring test on `lowered` misses no split."""
    body = answer.rstrip()[:-1]
    return (
        "." in body or "!" in body or "?" in body or ";" in body
        or "men" in lowered or "dock" in lowered or "däremot" in lowered or "medan" in lowered
    )  # fmt: skip


def _affirms(clause: str) -> bool:
    """A declarative clause about the municipality with any verb in second place; not a
    comparison with the nation ("Kalmar ligger i nivå med riket" says how, not whether)."""
    match = _VERB_SECOND.match(clause)
    return (
        bool(match)
        and match.group("verb").lower() not in _NOT_A_VERB
        and not _COMPARED_WITH_NATION.search(clause)
    )


_COMPARED_WITH_NATION = re.compile(
    r"\b(?:riket|rikssnitt\w*|riksgenomsnitt\w*|genomsnittet|landet|övriga kommuner)\b",
    re.IGNORECASE,
)
_OPENING_PARTIAL = re.compile(r"^\s*(?:delvis|till viss del|ja,? delvis)\b", re.IGNORECASE)
