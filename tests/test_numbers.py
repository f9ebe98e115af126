"""The number grammar, on real lines from the seeds (and the forms the issue names)."""

from __future__ import annotations

import pytest

from parsers import local_value, national_figures, national_reading


@pytest.mark.parametrize(
    ("statement", "percent", "values"),
    [
        # seed 000: the share sits between commas after a comparative opening
        ("Allt fler kommuner, 63 procent, har en aktuell skriftlig ... rutin", 63, [63]),
        # seed 000: "7 av 10" is a level; "ca 10 procentenheter" is a change, not a level
        (
            "Cirka 7 av 10 kommuner erbjuder stödsamtalmedbiståndsbeslut, vilket är en ökning "
            "med ca 10 procentenheter från föregående år. Vidare erbjuder cirka 6 av 10 "
            "kommuner stödsamtal utan biståndsbeslut, vilket är en ökning med ca 4 "
            "procentenheter från föregående år.",
            70,
            [70, 60],
        ),
        # seed 000: two levels joined by "respektive" -> the first
        (
            "vuxna (95 procent) respektive barn som utsatts för eller bevittnat våld (92 procent).",
            95,
            [95, 92],
        ),
        # seed 001: a count and years are not levels
        (
            "Cirka 48 000 barn ingick i familjer med långvarigt ekonomiskt bistånd under 2019.",
            None,
            [],
        ),
        # seed 001: vague words alone are not levels
        ("Få kommuner uppger att de har en upprättad kontinuitetsplan för boen-den", None, []),
        ("Majoriteten av kommunerna har satsat på fortbildning", None, []),
        # seed 001: "knappt hälften" bounds a share without stating it: no level at all
        # (stored as 50 it made a 94 -> 83 fall read as a 50 -> 83 rise)
        (
            "Majoriteten av kommunerna har satsat på fortbildning om våld i nära relationer, men "
            "knappt hälften kartlägger omfattningen",
            None,
            [],
        ),
        # seed 002
        ("En tredjedel av kommunerna bedriver uppsökande verksamhet.", 33.3, [33.3]),
        (
            "13 procent av kommunerna använder IBIC (individens behov i centrum) vid utredningar "
            "och 9 procent vid uppföljningar.",
            13,
            [13, 9],
        ),
        # seed 003: "4 av 5" and the current value of "från 22 till 15 procent"
        ("Däremot har 4 av 5 kommuner inte en aktuell rutin", 80, [80]),
        ("har minskat med sju procentenheter, från 22 till 15 procent 2019.", 15, [22, 15]),
        (
            "73 procent av kommunerna använder FREDA-kortfrågor för att upptäcka våld, vilket är "
            "en ökning med fem procentenheter från 2018.",
            73,
            [73],
        ),
        # seed 004: the comparison figure is kept in national_values, the headline is first
        (
            "28 procent av kommunerna har använt enskildas uppfattning ... Det kan jämföras med "
            "39 procent 2020.",
            28,
            [28, 39],
        ),
        (
            "55 procent av kommunerna har en aktuell rutin ... Det är en ökning i jämförelse med "
            "52 procent av kommunerna 2020 och 2019.",
            55,
            [55, 52],
        ),
        # forms the issue names, beyond the seeds
        ("I 12,5 % av kommunerna finns ...", 12.5, [12.5]),
        ("Andelen är 47.1 procent.", 47.1, [47.1]),
        # "drygt" bounds the verbal share: not a level
        ("Drygt nio av tio kommuner har ...", None, []),
        ("En av fem kommuner har ...", 20, [20]),
        ("Var tionde kommun saknar ...", 10, [10]),
        ("12 respektive 11 procent av kommunerna", 12, [12, 11]),
        ("Två tredjedelar av kommunerna", 66.7, [66.7]),
        # a relative change in percent is not a level either
        ("Antalet har ökat med 15 procent sedan 2019.", None, []),
        # a frequency is not a share
        ("Planen följs upp vart tredje år.", None, []),
        # "hälften så många" is a ratio, not a share
        ("Hälften så många kommuner som 2019 har ...", None, []),
    ],
)
def test_national_figures(statement: str, percent: float | None, values: list[float]) -> None:
    assert national_figures(statement) == (percent, tuple(values))


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("I Kalmar har 100% av handläggarna socionomexamen.", 100),  # seed 002
        # seed 001: the national figure in brackets is not the municipality's
        (
            "Andelen barn i familjer med långvarigt ekonomiskt bistånd var i Kalmar 0,9 (riket 2,2).",
            0.9,
        ),
        # seed 004: the first figure is this year's; the previous year's comes after
        (
            "I Kalmar är andelen utbildad personal med mer än fem års erfarenhet 42 procent. Det är "
            "en minskning från föregående år då andelen var 47.1 procent.",
            42,
        ),
        # seed 002: years are not values
        (
            "I Kalmar har detta inte skett under 2017. Under 2018 har implementeringen av "
            "arbetssättet IBIC påbörjats.",
            None,
        ),
        # seed 003: "vartannat" (every other year) is a frequency, not a value
        ("Den följs dock upp vart tredje år, inte vartannat.", None),
        ("Kalmar saknar rutin.", None),
        (None, None),
    ],
)
def test_local_value(answer: str | None, value: float | None) -> None:
    assert local_value(answer) == value


# --- issue 9: the number grammar of national statements, with the flag that says why ---
@pytest.mark.parametrize(
    ("statement", "percent", "values", "flags"),
    [
        # seed 001: quantifiers that bound or approximate without a number are not levels
        ("Majoriteten av kommunerna har satsat på fortbildning.", None, [], ["national_vague"]),
        ("De flesta kommuner har en rutin.", None, [], ["national_vague"]),
        (
            "Få kommuner uppger att de har en upprättad kontinuitetsplan.",
            None,
            [],
            ["national_vague"],
        ),
        ("Fler än hälften av kommunerna har en plan.", None, [], ["national_vague"]),
        ("Merparten av kommunerna erbjuder stödsamtal.", None, [], ["national_vague"]),
        # ... while "hälften", "en tredjedel", "var tionde", "sju av tio" state a number
        ("Hälften av kommunerna har en plan.", 50, [50], []),
        ("En tredjedel av kommunerna har en aktuell samlad plan.", 33.3, [33.3], []),
        ("Sju av tio kommuner erbjuder stödsamtal.", 70, [70], []),
        # seed 000: "Cirka 7 av 10" approximates a stated figure: a level
        ("Cirka 7 av 10 kommuner erbjuder stödsamtal med biståndsbeslut.", 70, [70], []),
        # an explicit figure beats a verbal approximation of the same share
        ("Drygt hälften, 54 procent, av kommunerna har en rutin.", 54, [54], []),
        ("Nästan nio av tio kommuner (88 procent) har en socialjour.", 88, [88], []),
        # change over time, with years in between: the latest figure is the level
        ("Andelen har ökat från 31 procent 2017 till 54 procent 2020.", 54, [31, 54], []),
        ("Andelen har sjunkit från 64 procent år 2016 till 57 procent år 2021.", 57, [64, 57], []),
        ("Det gäller 66 procent 2021, jämfört med 58 procent 2019.", 66, [66, 58], []),
        ("Jämfört med 2019 (58 procent) har andelen ökat till 66 procent.", 66, [58, 66], []),
        # a range across sub-questions or groups is not one level
        (
            "Andelen ligger mellan 12 och 30 procent beroende på målgrupp.",
            None,
            [12, 30],
            ["national_range"],
        ),
        ("Det gäller mellan 3–9 procent av kommunerna.", None, [3, 9], ["national_range"]),
        ("Andelen spänner från 12 till 30 procent.", None, [12, 30], ["national_range"]),
        (
            "Andelen varierar från 12 till 30 procent mellan länen.",
            None,
            [12, 30],
            ["national_range"],
        ),
        # ... but "från X till Y" with change words and no range words is a change
        ("Andelen har ökat från 12 till 30 procent.", 30, [12, 30], []),
        # a range told by its words, not by "mellan" alone
        (
            "Det finns stora skillnader mellan länen, från 12 till 30 procent.",
            None,
            [12, 30],
            ["national_range"],
        ),
        # the explicit figure restating a share in words is the level; no second value
        ("Sex av tio kommuner (61 procent) har en plan.", 61, [61], []),
        ("Var tredje kommun (33 procent) har inte en plan.", 33, [33], ["national_share_negated"]),
        # "Samtliga" names no figure either
        ("Samtliga kommuner har en plan.", None, [], ["national_vague"]),
        # a share of municipalities *without* the thing keeps its value, flagged
        (
            "Däremot har 4 av 5 kommuner inte en aktuell rutin för att förhindra avhysning.",
            80,
            [80],
            ["national_share_negated"],
        ),
        ("4 av 5 kommuner saknar en aktuell rutin.", 80, [80], ["national_share_negated"]),
        ("I 11 procent av kommunerna finns ingen rutin.", 11, [11], ["national_share_negated"]),
        # a negation describing the thing, far after the share, is not a negated share
        ("25 procent av kommunerna har en rutin för barn som inte går i skolan.", 25, [25], []),
        (
            "Andelen kommuner som saknar rutin har minskat till 20 procent.",
            20,
            [20],
            ["national_share_negated"],
        ),
        # seed 000: a negation in the name of the routine is not a negated share
        (
            "35 procent av Sveriges kommuner uppger att de har en aktuell skriftlig rutin för att "
            "inte röja skyddade personuppgifter.",
            35,
            [35],
            [],
        ),
        # a percent about staff or users in the first clause is a level like any other
        ("25 procent av handläggarna har en socionomexamen.", 25, [25], []),
    ],
)
def test_national_reading(
    statement: str, percent: float | None, values: list[float], flags: list[str]
) -> None:
    reading = national_reading(statement)
    assert (reading.percent, reading.values, reading.flags) == (
        percent,
        tuple(values),
        tuple(flags),
    )
