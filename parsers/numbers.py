"""The number grammar of Öppna jämförelser statements and local answers.

A *level* is a share stated as a percentage of something ("63 procent av kommunerna",
"Cirka 7 av 10 kommuner", "En tredjedel av kommunerna", "var tionde"). Changes
("ökning med ca 10 procentenheter", "ökat med 5 procent"), counts ("48 000 barn"),
years and vague words ("Få kommuner", "Majoriteten") are not levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER_WORDS = {
    "en": 1, "ett": 1, "två": 2, "tre": 3, "fyra": 4, "fem": 5, "sex": 6, "sju": 7,
    "åtta": 8, "nio": 9, "tio": 10, "elva": 11, "tolv": 12, "tjugo": 20,
}  # fmt: skip
_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_NUM = r"\d{1,3}(?:[,.]\d+)?"
# "procent" as a word: "procentenheter" (a change in points) and "procentuellt" never match.
_PCT = r"\s?(?:%|procent\b)"

# "63 procent", "12,5 %", "100%", "fem procent".
_PERCENT = re.compile(rf"(?<![\w,.])(?:(?P<num>{_NUM})|(?P<word>{_WORD})){_PCT}", re.IGNORECASE)
# The earlier numbers of a list whose last member carries the unit:
# "från 22 till 15 procent", "12 respektive 11 procent", "62, 55 och 40 procent".
_LIST_HEAD = re.compile(
    rf"(?<![\w,.])(?P<num>{_NUM})(?![,.]\d)"
    rf"(?=(?:(?:\s*,\s+|\s+(?:respektive|och|eller|till)\s+){_NUM})+{_PCT})",
    re.IGNORECASE,
)
# "7 av 10 kommuner", "drygt nio av tio", "en av fem", "4 av 5 kommuner".
_OUT_OF = re.compile(
    rf"(?<![\w,.])(?P<part>\d{{1,3}}|{_WORD})\s+av\s+(?P<whole>\d{{1,3}}|{_WORD})\b(?!\s*procent)",
    re.IGNORECASE,
)
_FRACTIONS = {"halv": 2, "tredjedel": 3, "fjärdedel": 4, "femtedel": 5, "sjättedel": 6,
              "tiondel": 10}  # fmt: skip
# "en tredjedel", "två tredjedelar", "hälften" (but not "hälften så många": a ratio).
_FRACTION = re.compile(
    rf"\b(?:(?P<part>{_WORD})\s+(?P<frac>tredjedel|fjärdedel|femtedel|sjättedel|tiondel)(?:ar)?\b"
    r"|(?P<half>hälften)\b(?!\s+så\b))",
    re.IGNORECASE,
)
_ORDINALS = {"annan": 2, "annat": 2, "tredje": 3, "fjärde": 4, "femte": 5, "sjätte": 6,
             "sjunde": 7, "åttonde": 8, "nionde": 9, "tionde": 10}  # fmt: skip
# "var tionde kommun", "varannan kommun"; "vart tredje år" is a frequency, not a share.
_EVERY_NTH = re.compile(
    r"\bvar(?:t)?\s?(?P<ord>annan|annat|tredje|fjärde|femte|sjätte|sjunde|åttonde|nionde|tionde)\b"
    r"(?!\s+(?:år|månad|vecka|dag|gång))",
    re.IGNORECASE,
)
# A percentage right after one of these is a change, not a level: "ökat med 5 procent".
_CHANGE_BEFORE = re.compile(
    r"(?:ökning|minskning|ökat|minskat|ökade|minskade|höjning|sänkning|ökar|minskar)\s+"
    r"(?:med\s+)?(?:ca\.?\s+|cirka\s+|drygt\s+|knappt\s+|nästan\s+|omkring\s+)?$",
    re.IGNORECASE,
)
_FROM_BEFORE = re.compile(r"\bfrån\s+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Level:
    value: float
    start: int
    end: int
    is_from: bool = False  # the earlier value of "från X till Y": not the current level
    in_words: bool = False  # "var tionde", "hälften": never a municipality's own figure


def _to_float(token: str) -> float:
    word = _NUMBER_WORDS.get(token.lower())
    return float(word) if word is not None else float(token.replace(",", "."))


def _share(part: float, whole: float) -> float | None:
    if whole <= 0 or part > whole:
        return None
    return round(part / whole * 100, 1)


def find_levels(text: str) -> list[Level]:
    """Every level percentage stated in `text`, in reading order."""
    levels: list[Level] = []
    lowered = text.lower()
    # Cheap substring tests first: most sentences hold none of the forms (pages have
    # thousands of statements, and each regex below scans the whole sentence).
    has_percent = "%" in text or "procent" in lowered
    for match in _PERCENT.finditer(text) if has_percent else ():
        if _CHANGE_BEFORE.search(text, max(0, match.start() - 40), match.start()):
            continue
        value = _to_float(match.group("num") or match.group("word"))
        if value <= 100:
            levels.append(Level(value, match.start(), match.end()))
    for match in _LIST_HEAD.finditer(text) if has_percent else ():
        value = _to_float(match.group("num"))
        if value <= 100 and not _CHANGE_BEFORE.search(
            text, max(0, match.start() - 40), match.start()
        ):
            is_from = _FROM_BEFORE.search(text, max(0, match.start() - 10), match.start())
            levels.append(Level(value, match.start(), match.end(), is_from=bool(is_from)))
    for match in _OUT_OF.finditer(text) if " av " in lowered else ():
        value = _share(_to_float(match.group("part")), _to_float(match.group("whole")))
        if value is not None:
            levels.append(Level(value, match.start(), match.end()))
    for match in _FRACTION.finditer(text) if "del" in lowered or "hälft" in lowered else ():
        if match.group("half"):
            value = 50.0
        else:
            value = _share(_to_float(match.group("part")), _FRACTIONS[match.group("frac").lower()])
        if value is not None:
            levels.append(Level(value, match.start(), match.end(), in_words=True))
    for match in _EVERY_NTH.finditer(text) if "var" in lowered else ():
        value = _share(1, _ORDINALS[match.group("ord").lower()])
        if value is not None:
            levels.append(Level(value, match.start(), match.end(), in_words=True))
    levels.sort(key=lambda level: level.start)
    return levels


def national_figures(statement: str) -> tuple[float | None, tuple[float, ...]]:
    """(headline percent, every level in order) of a national statement.

    The headline is the first level, except that the first value of "från 22 till 15
    procent" is the earlier figure: the headline is the current one, 15.
    """
    levels = find_levels(statement)
    values = tuple(level.value for level in levels)
    current = next((level.value for level in levels if not level.is_from), None)
    return current, values


_ANY_DIGIT_OR_PERCENT = re.compile(r"\d|procent", re.IGNORECASE)
# Comparisons printed next to the municipality's own figure: "0,9 (riket 2,2)".
_COMPARISON_ASIDE = re.compile(
    r"\((?:\s*(?:riket|rikets|landet|sverige|länet|snitt|genomsnitt|jämför)\w*)[^)]*\)",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(
    r"(?<![\w,.])(?P<num>\d+(?:[,.]\d+)?)(?!\w|[,.]\d)(?!\s*(?:år|års|månad|vecka|veckor|dag|dagar|timm|:e))",
    re.IGNORECASE,
)


def local_value(answer: str | None) -> float | None:
    """The figure the local answer states for the municipality, if any.

    "I Kalmar har 100% av handläggarna ..." -> 100; "... var i Kalmar 0,9 (riket 2,2)" -> 0.9
    (the national figure in brackets is skipped); "I Kalmar har detta inte skett under 2017"
    -> None (years are not values).
    """
    if not answer or not _ANY_DIGIT_OR_PERCENT.search(answer):
        return None  # most answers state no figure: skip the grammar
    text = _COMPARISON_ASIDE.sub(" ", answer)
    # Word forms describe frequencies in answers ("följs upp vart tredje år, inte vartannat").
    levels = [level for level in find_levels(text) if not level.in_words]
    if levels:
        return levels[0].value
    for match in _BARE_NUMBER.finditer(text):
        token = match.group("num")
        if re.fullmatch(r"(?:19|20)\d\d", token):
            continue
        return _to_float(token)
    return None
