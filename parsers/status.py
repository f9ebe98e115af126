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

_CLAUSE_SPLIT = re.compile(r"(?<=[.!?;])\s+|,?\s+(?:men|dock|däremot|medan)\s+", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(?:inte|ej|icke|ingen|inget|inga|saknar|saknas|saknade|aldrig|nej)\b", re.IGNORECASE
)
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
    r"|till viss del|inte fullt ut)\b",
    re.IGNORECASE,
)
_OPENING_YES = re.compile(r"^\s*ja\b", re.IGNORECASE)
_OPENING_NO = re.compile(r"^\s*nej\b", re.IGNORECASE)


def local_status(answer: str | None, value: float | None) -> str | None:
    """`yes`, `no`, `partial` or `unknown` for a local answer; None when there is none."""
    if not answer or not answer.strip():
        return None
    if _OPENING_NO.match(answer) and not _PARTIAL.search(answer):
        return "no"
    if _OPENING_YES.match(answer) and not _NEGATION.search(answer):
        return "yes"
    clauses = [clause for clause in _CLAUSE_SPLIT.split(answer) if clause and clause.strip()]
    negative = positive = False
    for clause in clauses:
        if _NEGATION.search(clause):
            negative = True
        elif _POSITIVE.search(clause):
            positive = True
    if _PARTIAL.search(answer) and (positive or negative):
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
