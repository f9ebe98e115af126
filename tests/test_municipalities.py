"""The municipality list, the fold key, and host/name lookup."""

from __future__ import annotations

from collections import defaultdict

import pytest

from parsers.municipalities import (
    AMBIGUOUS_KEYS,
    MUNICIPALITIES,
    MUNICIPALITIES_BY_COUNTY,
    canonical_name,
    fold,
    municipality_from_host,
)


def test_290_distinct_sorted_names() -> None:
    assert len(MUNICIPALITIES) == 290
    assert len(set(MUNICIPALITIES)) == 290
    assert list(MUNICIPALITIES) == sorted(MUNICIPALITIES)
    assert all(name == name.strip() and name[0].isupper() for name in MUNICIPALITIES)
    assert "Region Gotland" not in MUNICIPALITIES
    assert {"Gotland", "Upplands Väsby", "Upplands-Bro", "Malung-Sälen", "Dals-Ed"} <= set(
        MUNICIPALITIES
    )


def test_county_counts() -> None:
    counts = {county: len(names) for county, names in MUNICIPALITIES_BY_COUNTY.items()}
    assert counts == {
        "Stockholms län": 26,
        "Uppsala län": 8,
        "Södermanlands län": 9,
        "Östergötlands län": 13,
        "Jönköpings län": 13,
        "Kronobergs län": 8,
        "Kalmar län": 12,
        "Gotlands län": 1,
        "Blekinge län": 5,
        "Skåne län": 33,
        "Hallands län": 6,
        "Västra Götalands län": 49,
        "Värmlands län": 16,
        "Örebro län": 12,
        "Västmanlands län": 10,
        "Dalarnas län": 15,
        "Gävleborgs län": 10,
        "Västernorrlands län": 7,
        "Jämtlands län": 8,
        "Västerbottens län": 15,
        "Norrbottens län": 14,
    }


def test_only_habo_and_habo_fold_alike() -> None:
    by_key: dict[str, list[str]] = defaultdict(list)
    for name in MUNICIPALITIES:
        by_key[fold(name)].append(name)
    clashes = {key: sorted(names) for key, names in by_key.items() if len(names) > 1}
    assert clashes == {"habo": ["Habo", "Håbo"]}
    assert frozenset({"habo"}) == AMBIGUOUS_KEYS


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Upplands Väsby", "upplandsvasby"),
        ("Malung-Sälen", "malungsalen"),
        ("Örnsköldsvik", "ornskoldsvik"),
        ("ÅRE", "are"),
        ("Café Über 2.0", "cafeuber"),
    ],
)
def test_fold(text: str, key: str) -> None:
    assert fold(text) == key


@pytest.mark.parametrize(
    ("url", "municipality"),
    [
        ("https://kalmar.se/kommun-och-politik/x.html", "Kalmar"),
        ("https://www.vaxjo.se/", "Växjö"),
        ("http://www.orebro.se", "Örebro"),
        ("https://www.upplandsvasby.se", "Upplands Väsby"),
        ("https://upplands-vasby.se/", "Upplands Väsby"),
        ("https://www.upplands-bro.se/", "Upplands-Bro"),
        ("https://www.malung-salen.se/", "Malung-Sälen"),
        ("https://www.skelleftea.se", "Skellefteå"),
        ("https://www.goteborg.se", "Göteborg"),
        ("https://www.stockholm.se", "Stockholm"),
        ("https://sok.kalmar.se/x", "Kalmar"),
        ("http://KALMAR.se:8080/x?y=1#z", "Kalmar"),
        ("kalmar.se", "Kalmar"),
        ("www.vaxjo.se/omsorg", "Växjö"),
        ("https://kalmar.se./x", "Kalmar"),
        ("https://www.ostragoinge.se", "Östra Göinge"),
        ("https://www.halmstad.se", "Halmstad"),  # ends in "stad" but is a name
        ("https://www.tierpkommun.se", "Tierp"),
        ("https://ornskoldsvikskommun.se", "Örnsköldsvik"),
        ("https://www.boraskommun.se", "Borås"),  # name ends in "s": no genitive cut
        ("https://habo.se", "Håbo"),
        ("https://www.habokommun.se", "Habo"),
        ("https://www.engelholm.se", "Ängelholm"),
        ("https://www.herjedalen.se", "Härjedalen"),
        ("https://www.hellefors.se", "Hällefors"),
        ("https://www.morakommun.se/", "Mora"),
        ("https://www.dalsed.se/", "Dals-Ed"),
        ("https://kommun.varnamo.se/", "Värnamo"),
        ("https://kommun.falkenberg.se/", "Falkenberg"),
        ("https://www.lillaedet.se/", "Lilla Edet"),
        ("https://www.falun.se/", "Falun"),
        ("https://start.stockholm/", None),  # not ".se": see _HOST_ALIASES
        ("https://example.com", None),
        ("https://kalmar.com", None),
        ("https://example.se", None),
        ("https://kommun.se", None),
        ("https://se", None),
        ("http://127.0.0.1:8080/x", None),
        ("http://[::1]/x", None),
        ("http://[::1/x", None),
        ("http://localhost:8000/", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_municipality_from_host(url: str | None, municipality: str | None) -> None:
    assert municipality_from_host(url) == municipality


def test_every_name_round_trips_through_its_folded_host() -> None:
    for name in MUNICIPALITIES:
        if fold(name) in AMBIGUOUS_KEYS:
            continue
        assert municipality_from_host(f"https://www.{fold(name)}.se/") == name


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("VÄXJÖ", "Växjö"),
        ("vaxjo", "Växjö"),
        ("Växjö kommun", "Växjö"),
        ("  Kalmar kommun ", "Kalmar"),
        ("Örnsköldsviks kommun", "Örnsköldsvik"),
        ("Stockholms stad", "Stockholm"),
        ("Göteborgs Stad", "Göteborg"),
        ("Malmö stad", "Malmö"),
        ("Borås Stad", "Borås"),
        ("Halmstad", "Halmstad"),
        ("Halmstads kommun", "Halmstad"),
        ("upplands vasby", "Upplands Väsby"),
        ("MALUNG-SÄLEN", "Malung-Sälen"),
        ("Region Gotland", "Gotland"),
        ("Falu kommun", "Falun"),
        ("Dals-Eds kommun", "Dals-Ed"),
        ("Malung-Sälens kommun", "Malung-Sälen"),
        ("Ängelholms kommun", "Ängelholm"),
        ("Habo", "Habo"),
        ("Håbo kommun", "Håbo"),
        ("HÅBO", "Håbo"),
        ("Habo kommun", "Habo"),
        ("HABO", "Habo"),  # exact letters of Habo
        ("habo", "Habo"),
        ("ha-bo", "Habo"),
        (" Region Skåne ", "Region Skåne"),
        ("Riket", "Riket"),
        ("", ""),
        (None, None),
    ],
)
def test_canonical_name(name: str | None, canonical: str | None) -> None:
    assert canonical_name(name) == canonical


def test_every_name_is_its_own_canonical_name() -> None:
    for name in MUNICIPALITIES:
        assert canonical_name(name) == name
        assert canonical_name(f"{name} kommun") == name
        assert canonical_name(name.upper()) == name
