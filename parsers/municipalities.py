"""Sweden's 290 municipalities (kommuner), and the municipality a web page belongs to.

A municipal page seldom states its municipality in a machine-readable way, but its host
does: every kommun publishes under its own ".se" domain ("kalmar.se", "www.vaxjo.se",
"upplands-vasby.se"). Domain labels are ASCII, so the å/ä/ö (and the spaces and hyphens)
of the real name are lost: "vaxjo" must become "Växjö". The proper name therefore comes
from the official list below, looked up by a folded key (`fold`) that both the host label
and the official name reduce to. `canonical_name` does the same for names written by hand
("VÄXJÖ", "Växjö kommun", "Stockholms stad"). Pure: no IO, no network.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from urllib.parse import urlsplit

#: The municipalities of each county (län), spelled as in SCB's kommunindelning (290
#: since Knivsta was split from Uppsala in 2003). Written per county so the
#: count can be checked county by county; the counts are in the comments.
MUNICIPALITIES_BY_COUNTY: dict[str, tuple[str, ...]] = {
    # 26
    "Stockholms län": (
        "Botkyrka", "Danderyd", "Ekerö", "Haninge", "Huddinge", "Järfälla", "Lidingö",
        "Nacka", "Norrtälje", "Nykvarn", "Nynäshamn", "Salem", "Sigtuna", "Sollentuna",
        "Solna", "Stockholm", "Sundbyberg", "Södertälje", "Tyresö", "Täby", "Upplands-Bro",
        "Upplands Väsby", "Vallentuna", "Vaxholm", "Värmdö", "Österåker",
    ),
    # 8
    "Uppsala län": (
        "Enköping", "Heby", "Håbo", "Knivsta", "Tierp", "Uppsala", "Älvkarleby", "Östhammar",
    ),
    # 9
    "Södermanlands län": (
        "Eskilstuna", "Flen", "Gnesta", "Katrineholm", "Nyköping", "Oxelösund", "Strängnäs",
        "Trosa", "Vingåker",
    ),
    # 13
    "Östergötlands län": (
        "Boxholm", "Finspång", "Kinda", "Linköping", "Mjölby", "Motala", "Norrköping",
        "Söderköping", "Vadstena", "Valdemarsvik", "Ydre", "Åtvidaberg", "Ödeshög",
    ),
    # 13
    "Jönköpings län": (
        "Aneby", "Eksjö", "Gislaved", "Gnosjö", "Habo", "Jönköping", "Mullsjö", "Nässjö",
        "Sävsjö", "Tranås", "Vaggeryd", "Vetlanda", "Värnamo",
    ),
    # 8
    "Kronobergs län": (
        "Alvesta", "Lessebo", "Ljungby", "Markaryd", "Tingsryd", "Uppvidinge", "Växjö",
        "Älmhult",
    ),
    # 12
    "Kalmar län": (
        "Borgholm", "Emmaboda", "Hultsfred", "Högsby", "Kalmar", "Mönsterås", "Mörbylånga",
        "Nybro", "Oskarshamn", "Torsås", "Vimmerby", "Västervik",
    ),
    # 1 (the municipality is run by Region Gotland; its name is "Gotland")
    "Gotlands län": ("Gotland",),
    # 5
    "Blekinge län": ("Karlshamn", "Karlskrona", "Olofström", "Ronneby", "Sölvesborg"),
    # 33
    "Skåne län": (
        "Bjuv", "Bromölla", "Burlöv", "Båstad", "Eslöv", "Helsingborg", "Hässleholm",
        "Höganäs", "Hörby", "Höör", "Klippan", "Kristianstad", "Kävlinge", "Landskrona",
        "Lomma", "Lund", "Malmö", "Osby", "Perstorp", "Simrishamn", "Sjöbo", "Skurup",
        "Staffanstorp", "Svalöv", "Svedala", "Tomelilla", "Trelleborg", "Vellinge", "Ystad",
        "Åstorp", "Ängelholm", "Örkelljunga", "Östra Göinge",
    ),
    # 6
    "Hallands län": ("Falkenberg", "Halmstad", "Hylte", "Kungsbacka", "Laholm", "Varberg"),
    # 49
    "Västra Götalands län": (
        "Ale", "Alingsås", "Bengtsfors", "Bollebygd", "Borås", "Dals-Ed", "Essunga",
        "Falköping", "Färgelanda", "Grästorp", "Gullspång", "Göteborg", "Götene",
        "Herrljunga", "Hjo", "Härryda", "Karlsborg", "Kungälv", "Lerum", "Lidköping",
        "Lilla Edet", "Lysekil", "Mariestad", "Mark", "Mellerud", "Munkedal", "Mölndal",
        "Orust", "Partille", "Skara", "Skövde", "Sotenäs", "Stenungsund", "Strömstad",
        "Svenljunga", "Tanum", "Tibro", "Tidaholm", "Tjörn", "Tranemo", "Trollhättan",
        "Töreboda", "Uddevalla", "Ulricehamn", "Vara", "Vårgårda", "Vänersborg", "Åmål",
        "Öckerö",
    ),
    # 16
    "Värmlands län": (
        "Arvika", "Eda", "Filipstad", "Forshaga", "Grums", "Hagfors", "Hammarö", "Karlstad",
        "Kil", "Kristinehamn", "Munkfors", "Storfors", "Sunne", "Säffle", "Torsby", "Årjäng",
    ),
    # 12
    "Örebro län": (
        "Askersund", "Degerfors", "Hallsberg", "Hällefors", "Karlskoga", "Kumla", "Laxå",
        "Lekeberg", "Lindesberg", "Ljusnarsberg", "Nora", "Örebro",
    ),
    # 10
    "Västmanlands län": (
        "Arboga", "Fagersta", "Hallstahammar", "Kungsör", "Köping", "Norberg", "Sala",
        "Skinnskatteberg", "Surahammar", "Västerås",
    ),
    # 15
    "Dalarnas län": (
        "Avesta", "Borlänge", "Falun", "Gagnef", "Hedemora", "Leksand", "Ludvika",
        "Malung-Sälen", "Mora", "Orsa", "Rättvik", "Smedjebacken", "Säter", "Vansbro",
        "Älvdalen",
    ),
    # 10
    "Gävleborgs län": (
        "Bollnäs", "Gävle", "Hofors", "Hudiksvall", "Ljusdal", "Nordanstig", "Ockelbo",
        "Ovanåker", "Sandviken", "Söderhamn",
    ),
    # 7
    "Västernorrlands län": (
        "Härnösand", "Kramfors", "Sollefteå", "Sundsvall", "Timrå", "Ånge", "Örnsköldsvik",
    ),
    # 8
    "Jämtlands län": (
        "Berg", "Bräcke", "Härjedalen", "Krokom", "Ragunda", "Strömsund", "Åre", "Östersund",
    ),
    # 15
    "Västerbottens län": (
        "Bjurholm", "Dorotea", "Lycksele", "Malå", "Nordmaling", "Norsjö", "Robertsfors",
        "Skellefteå", "Sorsele", "Storuman", "Umeå", "Vilhelmina", "Vindeln", "Vännäs",
        "Åsele",
    ),
    # 14
    "Norrbottens län": (
        "Arjeplog", "Arvidsjaur", "Boden", "Gällivare", "Haparanda", "Jokkmokk", "Kalix",
        "Kiruna", "Luleå", "Pajala", "Piteå", "Älvsbyn", "Överkalix", "Övertorneå",
    ),
}  # fmt: skip

#: All 290 municipality names, sorted by code point (Python's `sorted`, so "Ä" sorts
#: before "Å"; this is not Swedish collation).
MUNICIPALITIES: tuple[str, ...] = tuple(
    sorted(name for names in MUNICIPALITIES_BY_COUNTY.values() for name in names)
)


def fold(text: str) -> str:
    """Reduce `text` to the key a name and its ASCII host label share.

    Lower-cases, drops diacritics (å/ä → a, ö → o, é → e, ü → u: NFKD splits each into
    a base letter and a combining mark, and the mark is not a letter) and drops every
    non-letter (spaces, hyphens, dots, digits): "Upplands Väsby" → "upplandsvasby",
    "Malung-Sälen" → "malungsalen".
    """
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isalpha())


def _build_lookup() -> tuple[dict[str, str], frozenset[str]]:
    by_key: dict[str, list[str]] = {}
    for name in MUNICIPALITIES:
        by_key.setdefault(fold(name), []).append(name)
    ambiguous = frozenset(key for key, names in by_key.items() if len(names) > 1)
    return {key: names[0] for key, names in by_key.items() if key not in ambiguous}, ambiguous


#: Folded name → proper name. Keys that two names share are left out (see AMBIGUOUS_KEYS):
#: a folded key cannot tell them apart, and a wrong municipality is worse than none.
_BY_FOLD, AMBIGUOUS_KEYS = _build_lookup()
# The only clash is "habo": Habo (Jönköpings län) and Håbo (Uppsala län). Their hosts
# are told apart in _HOST_ALIASES below, and `canonical_name` tells the names apart by
# their exact letters (_BY_LETTERS) before it folds.

#: Host labels that do not fold to their municipality's name: the two "habo" domains,
#: and three municipalities that spell their domain with "e" for "ä". (Other odd domains
#: need no alias: "morakommun.se" loses its "kommun", "dalsed.se" folds like "Dals-Ed",
#: "kommun.varnamo.se" and "kommun.falkenberg.se" keep the name as registrable label.
#: Stockholm's main site, "start.stockholm", is outside ".se" and is not recognised.)
_HOST_ALIASES: dict[str, str] = {
    "habo": "Håbo",  # habo.se is Håbo kommun (Bålsta) ...
    "habokommun": "Habo",  # ... and Habo kommun publishes as habokommun.se
    "engelholm": "Ängelholm",  # engelholm.se, the town's old spelling
    "herjedalen": "Härjedalen",  # herjedalen.se
    "hellefors": "Hällefors",  # hellefors.se
}

#: Name forms that do not fold to the municipality's name: the municipality Falun
#: signs as "Falu kommun".
_NAME_ALIASES: dict[str, str] = {"falu": "Falun"}

# Suffixes that follow the name in a domain label or an organisation name: "Tierps
# kommun", "Stockholms stad"; the genitive "s" is handled in `_lookup`.
_SUFFIXES = ("kommun", "stad")


def _letters(text: str) -> str:
    """`text` lower-cased with its non-letters dropped, diacritics kept ("håbo")."""
    return "".join(ch for ch in unicodedata.normalize("NFC", text.lower()) if ch.isalpha())


#: Lower-cased letters → proper name. Unlike the fold, this keeps å/ä/ö, so it tells
#: "Håbo" from "Habo" when a name is written with its Swedish letters; tried first by
#: `canonical_name`.
_BY_LETTERS: dict[str, str] = {_letters(name): name for name in MUNICIPALITIES}


def _lookup(
    key: str, aliases: dict[str, str] | None = None, table: dict[str, str] = _BY_FOLD
) -> str | None:
    """The municipality of folded `key`, allowing a trailing "kommun"/"stad" suffix.

    The plain key is tried first, so names that themselves end in "stad" (Halmstad,
    Karlstad, Ystad) are never cut. After the suffix is cut, a genitive "s" is dropped
    only when the remainder is not a name itself ("ornskoldsviks" → "ornskoldsvik",
    but "boras" stays Borås).
    """
    aliases = aliases or {}
    found = aliases.get(key) or table.get(key)
    if found or not key:
        return found
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            stem = key[: -len(suffix)]
            found = aliases.get(stem) or table.get(stem)
            if found is None and stem.endswith("s") and len(stem) > 1:
                found = table.get(stem[:-1])
            if found:
                return found
    return None


def municipality_from_host(url_or_host: str | None) -> str | None:
    """The municipality whose website `url_or_host` is on, or None.

    Takes the host of a URL (or a bare host), and looks up its registrable label: the
    last label before ".se" ("sok.kalmar.se" → "kalmar" → "Kalmar", "www.vaxjo.se" →
    "Växjö", "upplands-vasby.se" → "Upplands Väsby"). A trailing "kommun"/"stad" (with
    a genitive "s") is tolerated: "ornskoldsvikskommun.se" → "Örnsköldsvik". Returns
    None for None/empty input, hosts outside ".se", IP addresses and "localhost", and
    labels that are not a municipality.
    """
    if not url_or_host or not url_or_host.strip():
        return None
    text = url_or_host.strip()
    if "://" not in text:
        text = "//" + text  # a bare host ("kalmar.se/x"): make urlsplit see a netloc
    try:
        host = urlsplit(text).hostname
    except ValueError:  # e.g. an unbalanced "[" of an IPv6 literal
        return None
    if not host:
        return None
    host = host.rstrip(".")  # a fully qualified "kalmar.se."
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) < 2 or labels[-1] != "se":
        return None
    return _lookup(fold(labels[-2]), _HOST_ALIASES)


def canonical_name(name: str | None) -> str | None:
    """The official spelling of municipality `name`, else `name` stripped.

    "VÄXJÖ", "vaxjo" and "Växjö kommun" → "Växjö"; "Stockholms stad" → "Stockholm";
    "Region Gotland" → "Gotland"; "Falu kommun" → "Falun". Anything that is not
    (unambiguously) a municipality comes back stripped but otherwise unchanged, so a
    caller never loses text.
    """
    if name is None:
        return None
    stripped = name.strip()
    found = None
    # Exact letters first ("Håbo kommun" → Håbo), then the fold ("vaxjo" → Växjö), which
    # cannot place "habo".
    for key, table in ((_letters(stripped), _BY_LETTERS), (fold(stripped), _BY_FOLD)):
        if key.startswith("region") and len(key) > len("region"):
            key = key[len("region") :]  # the Gotland municipality signs as "Region Gotland"
        found = found or _lookup(key, _NAME_ALIASES, table)
    return found or stripped
