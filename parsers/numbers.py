"""The number grammar of Öppna jämförelser statements and local answers.

A *level* is a share stated as a percentage of something ("63 procent av kommunerna",
"Cirka 7 av 10 kommuner", "En tredjedel av kommunerna", "var tionde"). Changes
("ökning med ca 10 procentenheter", "ökat med 5 procent"), counts ("48 000 barn"),
years and vague words ("Få kommuner", "Majoriteten") are not levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

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
# The two alternatives of `_PERCENT` apart, for speed. A pattern that opens with a
# lookbehind gives the regex engine nothing to skip ahead with: it tries every position
# of the sentence. Opening with the first digit, then asserting what stood before it
# (`\d(?<![\w,.]\d)` is `(?<![\w,.])\d`), lets it jump from digit to digit (~3x faster
# on the statements). A figure and a number word never overlap (one is digits, the other
# letters, each ends at its unit), so their matches in order of position are `_PERCENT`'s.
_NUM_FIRST = r"\d(?<![\w,.]\d)\d{0,2}(?:[,.]\d+)?"  # `(?<![\w,.])` + `_NUM`, same spans
_PERCENT_FIGURE = re.compile(rf"(?P<num>{_NUM_FIRST}){_PCT}", re.IGNORECASE)
_PERCENT_WORD = re.compile(rf"(?<![\w,.])(?P<word>{_WORD}){_PCT}", re.IGNORECASE)
# The earlier numbers of a list whose last member carries the unit:
# "från 22 till 15 procent", "12 respektive 11 procent", "62, 55 och 40 procent".
# The lookahead is bounded to `_LIST_MAX` further members: unbounded, every number of a
# long run that never reaches a unit rescans the rest of the run ("2, " * 16000 +
# "procent." took 46 s; "2 och " * 16000 + "x procent" 63 s). Printed lists hold a
# handful of figures; in a longer one only the last members read as list heads.
_LIST_MAX = 30
_LIST_HEAD = re.compile(
    # `(?<![\w,.])` + `_NUM`, written digit first (see `_PERCENT_FIGURE`): ~2x faster
    rf"(?P<num>{_NUM_FIRST})(?![,.]\d)"
    rf"(?=(?:(?:\s*,\s+|\s+(?:respektive|och|eller|till)\s+){_NUM}){{1,{_LIST_MAX}}}{_PCT})",
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
# A level right after one of these is an earlier survey's figure or a bound, never the
# current level: "från 64 procent år 2016 till 57 procent", "jämfört med 58 procent
# 2019", "en minskning mot 94 procent", "Det kan jämföras med 39 procent 2020", "då det
# var 44 procent", "jämfört med 2019 (58 procent)", "fler än 50 procent".
_EARLIER_BEFORE = re.compile(
    r"(?:\bfrån|jämfört med|jämförelse med|jämföras med|\bmot|\bän|då det var|då andelen var"
    r"|\bvar det|föregående år|förra året)\s+(?:år\s+)?(?:(?:19|20)\d\d\s*)?\(?\s*"
    r"(?:ca\.?\s+|cirka\s+|drygt\s+|knappt\s+|nästan\s+|omkring\s+|ungefär\s+)?$",
    re.IGNORECASE,
)
# Words that bound a share in words instead of stating it: "knappt hälften", "Fler än
# hälften", "Drygt nio av tio", "Nästan 9 av 10". The share they bound is not a level.
# ("Cirka 7 av 10" approximates a stated figure: it stays a level, like "drygt 60 procent".)
_BOUND_BEFORE = re.compile(
    r"\b(?:drygt|knappt|nästan|närmare|närmre|över|under|mer än|fler än|färre än|mindre än"
    r"|minst|högst|upp ?emot|strax)\s+$",
    re.IGNORECASE,
)
# Quantifiers that approximate or bound a share without a number (seed 001: "Majoriteten
# av kommunerna har satsat ...", "Få kommuner uppger ..."): never a level.
_VAGUE = re.compile(
    r"\b(?:majoriteten|en majoritet|de flesta|flertalet|merparten|huvuddelen|en minoritet"
    r"|få|ett fåtal|fåtalet|fler|färre|många|allt fler|allt färre|nästan alla|de allra flesta"
    r"|samtliga|alla kommuner|ingen kommun)"
    r"\b",
    re.IGNORECASE,
)
# A span of two figures that is a range across sub-questions or groups, not a change:
# "mellan 12 och 30 procent", "mellan 3–9 procent", "3–9 procent".
_RANGE = re.compile(
    rf"(?:\bmellan\s+(?P<a>{_NUM})(?:{_PCT})?\s*(?:och|till|[-–—])\s*(?P<b>{_NUM}){_PCT}"
    rf"|(?<![\w,.])(?P<c>{_NUM})\s*[–—-]\s*(?P<d>{_NUM}){_PCT})",
    re.IGNORECASE,
)
# "från X till Y procent" is a range or a change, told apart by its words: "spänner från
# 12 till 30 procent", "varierar från ...", "skillnader mellan länen, från 12 till 30
# procent", "från 12 till 30 procent beroende på målgrupp" are ranges; "har ökat från 31
# procent 2017 till 54 procent 2020", "minskat ... från 22 till 15 procent 2019" changes.
_FROM_TO = re.compile(
    rf"\bfrån\s+(?P<a>{_NUM})(?:{_PCT})?(?P<mid>\s+(?:år\s+)?(?:(?:19|20)\d\d\s+)?)till\s+"
    rf"(?P<b>{_NUM}){_PCT}(?P<after>\s+(?:år\s+)?(?:19|20)\d\d\b)?",
    re.IGNORECASE,
)
_RANGE_WORDS = re.compile(
    r"\b(?:varier\w*|spänn\w*|spann|sträcker sig|skiftar|skillnad\w*|beroende på|olika"
    r"|mellan\s+(?:länen|kommunerna|regionerna|grupperna|målgrupperna|verksamheterna))\b",
    re.IGNORECASE,
)
_CHANGE_WORDS = re.compile(
    r"\b(?:ök\w*|minsk\w*|sjunk\w*|sjönk|stig\w*|steg|gått|förändr\w*|förbättr\w*"
    r"|försämr\w*|höj\w*|sänk\w*)\b",
    re.IGNORECASE,
)


def _range_spans(text: str) -> list[tuple[int, int]]:
    spans = [(m.start(), m.end()) for m in _RANGE.finditer(text)]
    for match in _FROM_TO.finditer(text):
        if re.search(r"\d{4}", match.group("mid")) or match.group("after"):
            continue  # years between the figures: a change over time
        clause_start = max(text.rfind(".", 0, match.start()), text.rfind(";", 0, match.start()))
        before = text[clause_start + 1 : match.start()]
        if _CHANGE_WORDS.search(before[-40:]):
            continue
        clause_end = re.search(r"[.;]", text[match.end() :])
        clause = before + text[match.start() : match.end() + (
            clause_end.start() if clause_end else len(text))]  # fmt: skip
        if _RANGE_WORDS.search(clause):
            spans.append((match.start(), match.end()))
    return spans


# Negations in the clause that holds the share: "4 av 5 kommuner [har] inte", "Var
# tionde kommun saknar". A negation inside the name of the thing ("rutin för att inte
# röja skyddade personuppgifter") is cut off with the purpose phrase first.
_SHARE_NEGATION = re.compile(
    r"\b(?:inte|ej|icke|saknar|saknas|saknade|ingen|inget|inga|aldrig)\b", re.IGNORECASE
)
_PURPOSE_TAIL = re.compile(
    r"\b(?:för att|för hur|om hur|så att|i syfte att|att inte|att ej)\b.*", re.IGNORECASE
)
_CLAUSE_END = re.compile(r"[.;!?](?:\s|$)|,\s+(?:men|medan|vilket|dock)\b", re.IGNORECASE)


# What may stand between a share in words and the figure that restates it.
_RESTATED = re.compile(
    r"[\s,(–-]*(?:av\s+)?(?:alla\s+|landets\s+|Sveriges\s+|samtliga\s+)?(?:kommun(?:er|erna)?)?"
    r"[\s,(–-]*(?:eller\s+|dvs\.?\s+|motsvarande\s+|det vill säga\s+)?",
    re.IGNORECASE,
)


#: Longest text the grammar reads. Statements and answers run to a few hundred characters
#: (359 at most on the shipped pages); a longer one is reduced to its sentences within
#: the bound (or cut at it), so the work per statement is bounded whatever a page prints
#: (a 48 KB "2, 2, 2, ... procent." statement is one hostile "sentence").
GRAMMAR_MAX_CHARS = 2000


def grammar_text(text: str) -> str:
    """`text` as the number grammar reads it: whole when within `GRAMMAR_MAX_CHARS`, else
    its leading sentences within the bound, else its first `GRAMMAR_MAX_CHARS` characters.
    A prefix, so positions in it are positions in `text`."""
    if len(text) <= GRAMMAR_MAX_CHARS:
        return text
    end = max(text.rfind(mark, 0, GRAMMAR_MAX_CHARS) for mark in (". ", "! ", "? "))
    return text[: end + 1] if end > 0 else text[:GRAMMAR_MAX_CHARS]


@dataclass(frozen=True, slots=True)
class Level:
    value: float
    start: int
    end: int
    is_from: bool = False  # an earlier survey's figure ("från X till Y", "jämfört med X")
    in_words: bool = False  # "var tionde", "hälften": never a municipality's own figure
    bounded: bool = False  # bounded, not stated ("knappt hälften"): not a level at all
    in_range: bool = False  # one end of a range across groups ("mellan 12 och 30 procent")


@dataclass(frozen=True, slots=True)
class NationalReading:
    """What a national statement says about the national share."""

    percent: float | None  # the current level; None when the text does not determine one
    values: tuple[float, ...]  # every stated level, earlier figures and range ends included
    flags: tuple[str, ...]  # national_range, national_share_negated, national_several_figures,
    # national_vague


# Characters that re.IGNORECASE matches with a letter that str.lower() does not turn them
# into ("ſ" matches "s", "K" (Kelvin) "k", "ı" and "İ" "i", which lowers to two
# characters), and that letter. Found by trying every code point against every letter the
# patterns use.
_ODD_LETTER_OF = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k", "\u212b": "å"}
_ODD_LETTERS = str.maketrans(_ODD_LETTER_OF)


def folded(word: str) -> str:
    """A word a case-insensitive pattern matched, as the lower-case key of a lookup
    table: "ſju procent" (long s) matches the number word "sju", and `"ſju".lower()` is
    still "ſju" (a page with it made `oj parse` fail with ValueError)."""
    return word.translate(_ODD_LETTERS).lower()


def _to_float(token: str) -> float:
    word = _NUMBER_WORDS.get(folded(token))
    return float(word) if word is not None else float(token.replace(",", "."))


def _share(part: float, whole: float) -> float | None:
    if whole <= 0 or part > whole:
        return None
    return round(part / whole * 100, 1)


def _earlier(
    text: str, start: int, lowered: str | None = None, words: tuple[str, ...] = ()
) -> bool:
    """Does an earlier survey's marker (`_EARLIER_BEFORE`) end right before `start`?
    `lowered`: `text.lower()` when `_plain_case(text)`, for a first look by substring
    for `words`, those of `_EARLIER_WORDS` that `lowered` holds."""
    low = max(0, start - 40)
    if lowered is not None and not any(lowered.find(word, low, start) >= 0 for word in words):
        return False
    return bool(_EARLIER_BEFORE.search(text, low, start))


# Every alternative of `_EARLIER_BEFORE` holds one of these (and `_CHANGE_BEFORE`'s one of
# `_CHANGE_WORDS_BEFORE`). Each check below tries the regex at every position of a 40-
# character window before every figure: a substring test rules out most figures first.
_EARLIER_WORDS = ("från", "jämför", "mot", "än", "då ", "var det", "föregående", "förra")
_CHANGE_WORDS_BEFORE = ("ök", "minsk", "höjning", "sänkning")
# In a text without `_ODD_LETTER_OF`'s characters, a lower-case substring test on
# `text.lower()` sees exactly what a case-insensitive pattern of those letters can match,
# at the same index.
_ODD_CASE = re.compile(f"[{''.join(_ODD_LETTER_OF)}]")


def _plain_case(text: str) -> bool:
    return _ODD_CASE.search(text) is None


def _av_before_number(lowered: str) -> bool:
    """Can `_OUT_OF` match: is some "av" between spaces followed by a figure or a number
    word ("7 av 10", "en av fem")? Most statements hold only "procent av kommunerna".
    `lowered`: `text.lower()` of a `_plain_case` text."""
    at = lowered.find("av")
    while at >= 0:
        after = at + 2
        if at and lowered[at - 1].isspace() and lowered[after : after + 1].isspace():
            while lowered[after : after + 1].isspace():
                after += 1
            if lowered[after : after + 1].isdecimal() or lowered.startswith(
                _NUMBER_WORDS_TUPLE, after
            ):
                return True
        at = lowered.find("av", at + 1)
    return False


_NUMBER_WORDS_TUPLE = tuple(_NUMBER_WORDS)


def _word_before_unit(text: str, lowered: str) -> bool:
    """Can `_PERCENT_WORD` match: does a letter stand right before a "%" or "procent"
    (one space between allowed, as `_PCT`)? `lowered` must be `text.lower()` of a
    `_plain_case` text."""
    for unit in ("%", "procent"):
        at = lowered.find(unit)
        while at >= 0:
            before = text[at - 1 : at] if at else ""
            if before.isspace():
                before = text[at - 2 : at - 1] if at >= 2 else ""
            if before.isalpha():
                return True
            at = lowered.find(unit, at + 1)
    return False


def bounded_at(text: str, start: int) -> bool:
    """Is the figure starting at `start` a bound, not a level ("över 74 procent", "minst
    80 procent")? Shared with the card layout (parsers/layouts/cards.py)."""
    return bool(_BOUND_BEFORE.search(text, max(0, start - 20), start))


@lru_cache(maxsize=16384)  # pure: the same statements recur across captures of a page
def find_levels(text: str) -> tuple[Level, ...]:
    """Every level percentage stated in `text`, in reading order (bounded ones included,
    marked, so callers can tell "knappt hälften" from "hälften")."""
    text = grammar_text(text)
    levels: list[Level] = []
    lowered = text.lower()
    # Cheap substring tests first: most sentences hold none of the forms (pages have
    # thousands of statements, and each regex below scans the whole sentence).
    has_percent = "%" in text or "procent" in lowered
    ranges = (
        _range_spans(text)
        if has_percent
        and ("mellan" in lowered or "från" in lowered or any(dash in text for dash in "-–—"))
        else []
    )

    def in_range(start: int) -> bool:
        return any(low <= start < high for low, high in ranges)

    # Substring first looks (see `_ODD_CASE`), only where they are exact.
    plain = _plain_case(text)
    plain_lowered = lowered if plain else None
    earlier_words = tuple(word for word in _EARLIER_WORDS if word in lowered) if plain else ()
    changes = not plain or any(word in lowered for word in _CHANGE_WORDS_BEFORE)

    def earlier(start: int) -> bool:
        return _earlier(text, start, plain_lowered, earlier_words)

    def changed(start: int) -> bool:
        return changes and _CHANGE_BEFORE.search(text, max(0, start - 40), start) is not None

    percents: list[re.Match[str]] = []
    if has_percent:
        percents = list(_PERCENT_FIGURE.finditer(text))
        if not plain or _word_before_unit(text, lowered):
            words = list(_PERCENT_WORD.finditer(text))
            if words:  # `_PERCENT`'s order: by position
                percents = sorted(percents + words, key=lambda match: match.start())
    for match in percents:
        if changed(match.start()):
            continue
        value = _to_float(match["word" if match.re is _PERCENT_WORD else "num"])
        if value <= 100:
            ranged = in_range(match.start())
            levels.append(Level(value, match.start(), match.end(), in_range=ranged,
                                is_from=not ranged and earlier(match.start())))  # fmt: skip
    for match in _LIST_HEAD.finditer(text) if has_percent else ():
        value = _to_float(match.group("num"))
        if value <= 100 and not changed(match.start()):
            ranged = in_range(match.start())
            levels.append(Level(value, match.start(), match.end(), in_range=ranged,
                                is_from=not ranged and earlier(match.start())))  # fmt: skip
    for match in _RANGE_HEAD.finditer(text) if ranges else ():
        # "3–9 procent": the lower end carries no unit of its own.
        if in_range(match.start()) and not any(lv.start == match.start() for lv in levels):
            value = _to_float(match.group("num"))
            if value <= 100:
                levels.append(Level(value, match.start(), match.end(), in_range=True))
    out_of = " av " in lowered and (not plain or _av_before_number(lowered))
    for match in _OUT_OF.finditer(text) if out_of else ():
        value = _share(_to_float(match.group("part")), _to_float(match.group("whole")))
        if value is not None:
            levels.append(Level(value, match.start(), match.end(), in_words=True,
                                bounded=bounded_at(text, match.start()),
                                is_from=earlier(match.start())))  # fmt: skip
    for match in _FRACTION.finditer(text) if "del" in lowered or "hälft" in lowered else ():
        if match.group("half"):
            value = 50.0
        else:
            value = _share(_to_float(match.group("part")), _FRACTIONS[folded(match.group("frac"))])
        if value is not None:
            levels.append(Level(value, match.start(), match.end(), in_words=True,
                                bounded=bounded_at(text, match.start()),
                                is_from=earlier(match.start())))  # fmt: skip
    for match in _EVERY_NTH.finditer(text) if "var" in lowered else ():
        value = _share(1, _ORDINALS[folded(match.group("ord"))])
        if value is not None:
            levels.append(Level(value, match.start(), match.end(), in_words=True,
                                bounded=bounded_at(text, match.start())))  # fmt: skip
    levels.sort(key=lambda level: level.start)
    return tuple(levels)


# The unit-less lower end of a dash range: "3" in "3–9 procent".
_RANGE_HEAD = re.compile(rf"(?<![\w,.])(?P<num>{_NUM})(?=\s*[–—-]\s*{_NUM}{_PCT})", re.IGNORECASE)


def _share_negated(statement: str, level: Level) -> bool:
    """Is the share stated for municipalities *without* the thing? ("4 av 5 kommuner har
    inte en aktuell rutin", "Var tionde kommun saknar ...", "Andelen kommuner som saknar
    rutin är 20 procent").

    The negation must sit before the share in its clause, or among the first words after
    it (the verb and what it says of the municipalities). Further on it belongs to the
    thing's description: "25 procent av kommunerna har en rutin för barn som inte går i
    skolan", "rutin för att inte röja skyddade personuppgifter" (seed 000).
    """
    clause_start = 0
    for end in _CLAUSE_END.finditer(statement, 0, level.start):
        clause_start = end.end()
    after = _CLAUSE_END.search(statement, level.end)
    before = _purpose_cut(statement[clause_start : level.start])
    rest = statement[level.end : after.start() if after else len(statement)]
    rest = _OF_MUNICIPALITIES.sub("", _purpose_cut(rest), count=1)
    first_words = " ".join(rest.split()[:6])
    return bool(_SHARE_NEGATION.search(before) or _SHARE_NEGATION.search(first_words))


def _purpose_cut(text: str) -> str:
    """`text` without its purpose phrase (`_PURPOSE_TAIL`). Every alternative holds "för",
    "hur" or "att", letters no other character matches case-insensitively: a substring
    test skips the regex's scan of most clauses."""
    lowered = text.lower()
    if "för" in lowered or "hur" in lowered or "att" in lowered:
        return _PURPOSE_TAIL.sub("", text)
    return text


_OF_MUNICIPALITIES = re.compile(
    r"^[\s,)]*(?:av\s+)?(?:alla\s+|landets\s+|Sveriges\s+|samtliga\s+)?(?:kommun\w*)?",
    re.IGNORECASE,
)


@lru_cache(maxsize=16384)
def stated_levels(statement: str) -> tuple[Level, ...]:
    """The levels a statement states: bounded ones dropped ("knappt hälften"), and a share
    in words dropped where a figure right after restates it ("Sex av tio kommuner (61
    procent)", "Hälften av kommunerna, 50 procent,": the figure is the level and the
    words add no second value)."""
    statement = grammar_text(statement)
    stated = [level for level in find_levels(statement) if not level.bounded]
    for index in range(len(stated) - 1, 0, -1):
        words, figure = stated[index - 1], stated[index]
        if (
            words.in_words
            and not figure.in_words
            and _RESTATED.fullmatch(statement, words.end, figure.start)
        ):
            del stated[index - 1]
    return tuple(stated)


def current_level(statement: str) -> Level | None:
    """The level that is the statement's current figure: the first stated one that is not
    an earlier survey's. Both the national percent and the year attached to it read it."""
    return next((level for level in stated_levels(statement) if not level.is_from), None)


@lru_cache(maxsize=16384)
def national_reading(statement: str) -> NationalReading:
    """The national share a statement states, every level in it, and why it may be null.

    - The current level is the first one that is not an earlier survey's figure ("från
      31 procent 2017 till 54 procent 2020" -> 54; "66 procent 2021, jämfört med 58
      procent 2019" -> 66), nor a bound ("knappt hälften" is no level at all). An explicit
      figure therefore beats a bounded verbal one: "Drygt hälften, 54 procent" -> 54.
    - A range across groups ("mellan 12 och 30 procent") is not one level: null, both
      ends in values, flag `national_range`.
    - A share of municipalities *without* the thing keeps its value, flagged
      `national_share_negated`.
    - Several current figures for different groups ("myndighetsutövningen (12 procent)
      respektive utförarverksamheten (11 procent)", "13 procent ... vid utredningar och 9
      procent vid uppföljningar"): the first stays the percent, every one is in values,
      flag `national_several_figures`. An earlier survey's figure beside the current one
      ("från 22 till 15 procent", "jämfört med 58 procent 2019") is history, not a
      second figure.
    - Null with `national_vague`: the statement quantifies only in words that bound or
      approximate ("Majoriteten", "De flesta", "Få", "knappt hälften").
    """
    statement = grammar_text(statement)
    levels = find_levels(statement)
    stated = stated_levels(statement)
    values = tuple(level.value for level in stated)
    flags: list[str] = []
    current = current_level(statement)
    percent = None
    if current is not None and current.in_range:
        flags.append("national_range")
    elif current is not None:
        percent = current.value
        if _share_negated(statement, current):
            flags.append("national_share_negated")
    if percent is not None and _several_current(statement, stated):
        flags.append("national_several_figures")
    if (
        percent is None
        and "national_range" not in flags
        and (len(stated) < len(levels) or _VAGUE.search(statement))
    ):
        flags.append("national_vague")
    return NationalReading(percent, values, tuple(flags))


# A year printed right after a figure: "66 procent 2021", "30 procent år 2018".
_YEAR_AFTER = re.compile(r"\s*(?:år\s+)?(?P<year>(?:19|20)\d\d)\b")


def _several_current(statement: str, stated: tuple[Level, ...]) -> bool:
    """Does the statement give more than one current figure (one per group or
    sub-question)? Earlier surveys' figures, range ends and bounds are not current.
    Figures each dated with a different year ("30 procent 2018 och 45 procent 2020") are
    one figure and its history, not several."""
    current = [level for level in stated if not level.is_from and not level.in_range]
    if len(current) < 2:
        return False
    years = set()
    for level in current:
        dated = _YEAR_AFTER.match(statement, level.end)
        if dated is None:
            return True
        years.add(dated.group("year"))
    return len(years) < 2


def national_figures(statement: str) -> tuple[float | None, tuple[float, ...]]:
    """(headline percent, every stated level in order) of a national statement; see
    `national_reading`, which also says why the headline may be null."""
    reading = national_reading(statement)
    return reading.percent, reading.values


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


@lru_cache(maxsize=16384)  # pure: the same answers recur across captures of a page
def local_value(answer: str | None) -> float | None:
    """The figure the local answer states for the municipality, if any.

    "I Kalmar har 100% av handläggarna ..." -> 100; "... var i Kalmar 0,9 (riket 2,2)" -> 0.9
    (the national figure in brackets is skipped); "I Kalmar har detta inte skett under 2017"
    -> None (years are not values).
    """
    if not answer or not _ANY_DIGIT_OR_PERCENT.search(answer):
        return None  # most answers state no figure: skip the grammar
    text = _COMPARISON_ASIDE.sub(" ", grammar_text(answer))
    # Word forms describe frequencies in answers ("följs upp vart tredje år, inte vartannat").
    levels = [level for level in find_levels(text) if not level.in_words and not level.bounded]
    current = [level for level in levels if not level.is_from] or levels
    if current:
        return current[0].value
    for match in _BARE_NUMBER.finditer(text):
        token = match.group("num")
        if re.fullmatch(r"(?:19|20)\d\d", token):
            continue
        return _to_float(token)
    return None
