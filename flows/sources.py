"""The pages to follow, from a `sources.toml` file.

[[page]]
municipality = "Kalmar"
municipality_code = "0880"   # SCB kommunkod
area = "Våld i nära relationer"
url = "https://kalmar.se/.../vald-i-nara-relationer.html"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from flows.errors import UsageError


@dataclass(frozen=True)
class Source:
    municipality: str
    municipality_code: str
    area: str
    url: str


class SourcesError(UsageError, ValueError):
    """A sources file that cannot be used, with the file and entry named."""


@lru_cache(maxsize=65536)  # the history derivations call it once per finding
def page_key(url: str) -> str:
    """One key for a page however its host was spelled: kalmar.se and www.kalmar.se are one."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    return f"{host}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def load_sources(path: Path | str) -> list[Source]:
    """The pages of a sources file; SourcesError names the file, the entry or line, and
    the key for anything malformed."""
    from flows.raw_archive import check_url

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SourcesError(f"{path}: {error}") from error
    sources = []
    pages = data.get("page", [])
    if not isinstance(pages, list):
        raise SourcesError(f"{path}: 'page' must be an array of tables ([[page]])")
    for index, entry in enumerate(pages, start=1):
        try:
            source = Source(**{key: str(entry[key]) for key in Source.__dataclass_fields__})
        except KeyError as error:
            raise SourcesError(f"{path}: [[page]] #{index} lacks {error.args[0]!r}") from error
        try:
            check_url(source.url)
        except ValueError as error:
            raise SourcesError(f"{path}: [[page]] #{index}: {error}") from None
        sources.append(source)
    return sources
