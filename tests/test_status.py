"""Local status with real answers from the seeds."""

from __future__ import annotations

import pytest

from parsers import local_status, local_value


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("I Kalmar finns en rutin för hur handläggare ... ska gå tillväga", "yes"),
        (
            "I Kalmar erbjuds stödsamtal till vuxna våldsutövare både med och utan biståndsbeslut.",
            "yes",
        ),  # "utan" is not a negation
        (
            "Handläggarna har fått fortbildning om våld i nära relationer och kartläggning är gjord.",
            "yes",
        ),
        ("I Kalmar finns inte en rutin för hur handläggare ska säkra skolgången", "no"),
        ("Kalmar saknar rutin för hur handläggare ska säkra skolgången", "no"),
        ("I Kalmar görs ingen systematisk uppföljning av resultaten.", "no"),
        # a negation inside the object does not flip a "saknar"
        ("Kalmar saknar rutin för att inte röja skyddade personuppgifter", "no"),
        (
            "I Kalmar finns ingen aktuell rutin för att säkra skolgång för barn i skyddat boende.",
            "no",
        ),
        # has it, but outdated
        (
            "I Kalmar finns en rutin (Samordning internt - myndighetshandläggning), men denna är "
            "inte uppdaterad.",
            "partial",
        ),
        # part of it
        (
            "I Kalmar har undersökning gjorts och använts för att utveckla utförarverksamhet men "
            "inte för myndighetsutövning.",
            "partial",
        ),
        (
            "Kalmar bedriver inte uppsökande verksamhet förutom för de som riskerar att förlora "
            "sitt boende.",
            "partial",
        ),
        (
            "I Kalmar har detta inte skett under 2017. Under 2018 har implementeringen av "
            "arbetssättet IBIC påbörjats.",
            "partial",
        ),
        # mixed: lacks one thing, has the other, and follows it up less often than required
        (
            "Kalmar saknar överenskommelser med bostadsföretag och hyresvärdar. Kalmar har en rutin "
            "för att förhindra att barnfamiljer med hyresskuld avhyses. Den följs dock upp vart "
            "tredje år, inte vartannat.",
            "partial",
        ),
        # a figure answers "how much", not "whether"
        ("I Kalmar har 100% av handläggarna socionomexamen.", "unknown"),
        (
            "Andelen barn i familjer med långvarigt ekonomiskt bistånd var i Kalmar 0,9 (riket 2,2).",
            "unknown",
        ),
        ("Se kommunens webbplats.", "unknown"),
        ("Ja.", "yes"),
        ("Nej.", "no"),
    ],
)
def test_local_status(answer: str, status: str) -> None:
    assert local_status(answer, local_value(answer)) == status


def test_no_answer_has_no_status() -> None:
    assert local_status(None, None) is None


# --- issue 9: local status by the grammar of the answer, not by a list of verbs ---
@pytest.mark.parametrize(
    ("answer", "status"),
    [
        # an affirmative sentence with any verb in second place (Swedish V2 word order)
        ("I Kalmar erbjuds samtalsstöd till barn som bevittnat våld.", "yes"),
        ("Kalmar informerar alla placerade barn om deras rättigheter.", "yes"),
        ("Här gör man en kartläggning varje år.", "yes"),
        ("Kalmar kartlägger omfattningen varje år.", "yes"),
        ("Under 2020 har Kalmar infört en ny rutin.", "yes"),
        # a negation inside the name of the routine is not a "no"
        ("Kalmar har en rutin för att inte röja skyddade personuppgifter.", "yes"),
        # "X, men inte Y", "delvis", "för vissa grupper", has it but out of date -> partial
        ("Kalmar erbjuder stödsamtal till vuxna, men inte till barn.", "partial"),
        ("Rutinen finns delvis.", "partial"),
        ("I Kalmar erbjuds stödet för vissa grupper.", "partial"),
        ("Kalmar har en rutin som inte är uppdaterad.", "partial"),
        ("Kalmar har en rutin, men den behöver uppdateras.", "partial"),
        ("Delvis.", "partial"),
        # unknown only for a figure or a text that is neither yes nor no
        ("Uppgift saknas.", "unknown"),
        ("Kalmar ligger i nivå med riket.", "unknown"),
        ("Kalmar har inte besvarat frågan.", "unknown"),
    ],
)
def test_local_status_grammar(answer: str, status: str) -> None:
    assert local_status(answer, local_value(answer)) == status
