"""A synthetic raw archive of N page snapshots, built from the shipped pages.

Realistic ~100 KB Sitevision pages: the chrome of the HTML fixtures (mega menu, scripts,
cookie and alert banners, footer) padded with more menu links, around content recombined
from the bullet pairs of the five seed pages: 1-4 results sections per page, 2-6 bullets
each, national figures varied by question and year (one per question and year, as
published), the municipality renamed, four markups of the bullet pairs, and about one
page in ten in Windows-1252 without a declared charset.
Deterministic from the seed; written straight to disk, one page at a time.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows import raw_archive  # noqa: E402
from parsers import parse_page  # noqa: E402

TEMPLATE = ROOT / "tests" / "fixtures" / "html" / "000_li_br.html"
MARKUPS = ("li_br", "li_p", "p_after", "bullet_p")
MONTHS = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
]
AREAS = (
    "Våld i nära relationer",
    "Barn- och ungdomsvård",
    "Ekonomiskt bistånd",
    "Psykisk funktionsnedsättning - socialpsykiatri",
    "Hemlöshet",
    "Missbruk- och beroendevård",
    "Stöd till personer med funktionsnedsättning",
    "Krisberedskap inom socialtjänsten",
)
TARGET_BYTES = 100_000


@dataclass(frozen=True)
class Pair:
    statement: str
    answer: str | None


def seed_pairs() -> list[Pair]:
    pairs = []
    for record in raw_archive.iter_records(ROOT / "raw"):
        page = parse_page(raw_archive.read_object(ROOT / "raw", record.sha256))
        pairs.extend(Pair(f.national_statement, f.local_answer) for f in page.findings)
    return pairs


def municipality_names(count: int) -> list[str]:
    stems = (
        "Kalm",
        "Väx",
        "Lund",
        "Ume",
        "Gävl",
        "Borå",
        "Falu",
        "Nora",
        "Mora",
        "Ystad",
        "Kiru",
        "Sala",
        "Hjo",
        "Åmål",
        "Öre",
        "Skövd",
        "Tran",
        "Varb",
        "Ljung",
        "Eksj",
    )
    endings = (
        "ar",
        "sjö",
        "eå",
        "e",
        "ås",
        "by",
        "köping",
        "hamn",
        "vik",
        "berg",
        "torp",
        "holm",
        "dal",
        "ö",
        "näs",
    )
    names = [f"{stem}{end}" for end in endings for stem in stems]
    return names[:count]


def _vary(statement: str, year: int) -> str:
    """The statement with the national figures of `year`: one figure per question and
    year on every municipality's page, as Socialstyrelsen publishes one national result
    (a figure drawn per page made every question's every year a national conflict)."""
    digest = hashlib.sha256(f"{statement}|{year}".encode()).digest()
    figures = random.Random(int.from_bytes(digest[:8], "big"))
    return re.sub(r"\b\d{1,2}(?= procent)", lambda _: str(figures.randint(3, 97)), statement)


def _bullets(pairs: list[tuple[str, str | None]], markup: str, rng: random.Random) -> str:
    esc = html.escape
    if markup == "li_br":
        items = "".join(
            f"<li>{esc(s)}<br>{esc(a)}</li>\n" if a else f"<li>{esc(s)}</li>\n" for s, a in pairs
        )
        return f'<ul class="normal">\n{items}</ul>\n'
    if markup == "li_p":
        items = "".join(
            f"<li><p>{esc(s)}</p>" + (f"<p>{esc(a)}</p>" if a else "") + "</li>\n" for s, a in pairs
        )
        return f'<ul class="normal">\n{items}</ul>\n'
    if markup == "p_after":
        return "".join(
            f'<ul class="normal"><li>{esc(s)}</li></ul>\n'
            + (f'<p class="normal">{esc(a)}</p>\n' if a else "")
            for s, a in pairs
        )
    return "".join(
        f'<p class="normal">&#8226;&nbsp;{esc(s)}</p>\n'
        + (f'<p class="normal">{esc(a)}</p>\n' if a else "")
        for s, a in pairs
    )


def build_page(
    rng: random.Random,
    pool: list[Pair],
    chrome: tuple[str, str],
    municipality: str,
    area: str,
    year: int,
) -> tuple[str, bool]:
    """One page's HTML, and whether to store it in Windows-1252."""
    head, tail = chrome
    markup = rng.choice(MARKUPS)
    sections = []
    for index in range(rng.randint(1, 4)):
        heading = (
            "Årets resultat visar att:"
            if index == 0 and rng.random() < 0.7
            else f"{year - index} års resultat visar att:"
        )
        chosen = rng.sample(pool, rng.randint(2, 6))
        pairs = [
            (
                _vary(p.statement, year - index),
                p.answer.replace("Kalmar", municipality) if p.answer else None,
            )
            for p in chosen
        ]
        sections.append(f'<h2 class="subheading">{heading}</h2>\n{_bullets(pairs, markup, rng)}')
    updated = f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {year}"
    main = (
        '<main id="content" class="sv-layout"><div class="sv-text-portlet sv-use-margins">'
        f'<div class="sv-text-portlet-content"><h1 class="heading">{html.escape(area)}</h1>'
        '</div></div><div class="sv-text-portlet sv-use-margins"><div class="sv-text-portlet-'
        f'content"><p class="lead">Öppna jämförelser {html.escape(area.lower())} bygger på '
        "enkäter till landets samtliga kommuner.</p>\n"
        + "".join(sections)
        + f'</div></div><div class="sv-custom-module"><p>Senast uppdaterad: {updated}</p>'
        f"<p>Publicerad: 3 juli {year - rng.randint(1, 4)}</p></div></main>\n"
    )
    title = f"<title>{html.escape(area)} - {municipality} kommun</title>"
    page = re.sub(r"<title>.*?</title>", title, head, count=1) + main + tail
    padding = []
    size = len(page.encode("utf-8"))
    while size < TARGET_BYTES - 400:  # more of the mega menu: real menus run to hundreds
        link = (
            f'<li class="kk-menu-item"><a href="/omsorg/{rng.randrange(10**6)}.html">'
            f"Tjänst {rng.randrange(10**4)} för invånare i {municipality}</a></li>\n"
        )
        padding.append(link)
        size += len(link.encode("utf-8"))
    page = page.replace("</nav>", f'<ul class="kk-extra">{"".join(padding)}</ul></nav>', 1)
    return page, rng.random() < 0.1


def load_chrome() -> tuple[str, str]:
    template = TEMPLATE.read_text("utf-8")
    start, end = template.index("<main"), template.index("</main>") + len("</main>")
    return template[:start], template[end:]


def slug(area: str) -> str:
    """The last part of an area page's URL: "Hemlöshet" -> "hemloshet"."""
    return re.sub(r"[^a-z]+", "-", area.lower().translate(str.maketrans("åäö", "aao"))).strip("-")


#: Above this many snapshots, the rest are unchanged recaptures (see `build_corpus`).
DISTINCT_PAGES = 10_000


def build_corpus(raw_dir: Path, n: int, seed: int = 20261122) -> int:
    """Write n snapshots into a raw archive at raw_dir (pages spread over municipalities x
    areas, several captures each, in capture order); the number written.

    Up to DISTINCT_PAGES snapshots every page is new; beyond, a snapshot is new with
    probability DISTINCT_PAGES / n and otherwise an unchanged recapture of a page seen
    before (its latest bytes, a later capture time), as most Wayback captures of a page
    are. The objects are shared; the records go to segment files (`ArchiveAppender`), and
    a recapture's record is made from the page's known digest without hashing its bytes
    again, so a recapture costs a JSON line: 150,000 snapshots take ~1 GB.
    """
    rng = random.Random(seed)
    recapture = random.Random(seed + 1)  # its own stream: n <= DISTINCT_PAGES is unchanged
    new_share = min(1.0, DISTINCT_PAGES / max(n, 1))
    pool = seed_pairs()
    chrome = load_chrome()
    municipalities = municipality_names(max(1, min(290, n // 30)))
    start = datetime(2016, 1, 1, tzinfo=UTC)
    latest: dict[str, raw_archive.SnapshotRecord] = {}  # url -> the record of its latest bytes
    urls: list[str] = []
    written = 0
    with raw_archive.ArchiveAppender(raw_dir) as archive:
        for index in range(n):
            captured = start + timedelta(seconds=index * (10 * 365 * 86400 // max(n, 1)))
            if urls and recapture.random() >= new_share:
                url = recapture.choice(urls)
                seen = latest[url]
                when = raw_archive.iso(captured)
                record = replace(
                    seen,
                    record_id=raw_archive.record_id_for(seen.sha256, url, when, "wayback"),
                    captured_at=when,
                    fetched_at=raw_archive.iso(datetime.now(UTC)),
                )
                written += archive.add_record(record)
                continue
            municipality = rng.choice(municipalities)
            area = rng.choice(AREAS)
            page, legacy = build_page(rng, pool, chrome, municipality, area, captured.year)
            if legacy:  # older pages: Windows-1252 and no charset declared anywhere
                data = page.replace('<meta charset="utf-8">', "").encode(
                    "cp1252", "xmlcharrefreplace"
                )
            else:
                data = page.encode("utf-8")
            url = (
                f"https://{municipality.lower().translate(str.maketrans('åäö', 'aao'))}.se/"
                f"kommun-och-politik/jamforelser/{slug(area)}.html"
            )
            record, added = archive.add(
                data,
                url=url,
                source="wayback",
                municipality=municipality,
                captured_at=captured,
                content_type="text/html",
            )
            written += added
            if new_share < 1:
                if url not in latest:
                    urls.append(url)
                latest[url] = record
    return written


def main(argv: list[str] | None = None) -> int:
    """`python bench/corpus.py DIR --n N`: build a corpus and say how long it took."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = build_corpus(args.raw_dir, args.n, args.seed)
    print(f"{written:,} snapshots in {time.perf_counter() - started:.1f} s -> {args.raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
