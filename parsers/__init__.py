"""Pure parsers for Öppna jämförelser pages: text or HTML in, frozen records out.

No file, network, clock or Prefect here, so the same input always gives the same
output and a notebook can call `parse_page` directly.
"""

from parsers.decode import PageError, decode_page, looks_like_html
from parsers.layouts import DIRECTIONS, PageContext, normalize_label
from parsers.numbers import (
    NationalReading,
    find_levels,
    local_value,
    national_figures,
    national_reading,
)
from parsers.page import LAYOUTS, parse_page, relative_heading
from parsers.records import (
    COMPARISONS,
    ENTITY_KINDS,
    FLAGS,
    LOCAL_STATUSES,
    NATIONAL_COMPARISONS,
    NATIONAL_FLAGS,
    NATIONAL_MEASURES,
    REJECT_REASONS,
    SURVEY_YEAR_BASES,
    Finding,
    ParsedPage,
    Reject,
)
from parsers.status import local_status
from parsers.years import section_years, statement_years

#: Bump when a change can alter any parsed record: the flow re-parses the raw archive
#: into a new release when this differs from the version that parsed it.
PARSER_VERSION = "2.2.1"  # 2.2.1: words with "ſ", "K", "ı", "İ", "Å" read, not a failure

__all__ = [
    "COMPARISONS",
    "DIRECTIONS",
    "ENTITY_KINDS",
    "FLAGS",
    "LAYOUTS",
    "LOCAL_STATUSES",
    "NATIONAL_COMPARISONS",
    "NATIONAL_MEASURES",
    "NATIONAL_FLAGS",
    "PARSER_VERSION",
    "REJECT_REASONS",
    "SURVEY_YEAR_BASES",
    "Finding",
    "PageContext",
    "PageError",
    "ParsedPage",
    "Reject",
    "decode_page",
    "find_levels",
    "local_status",
    "local_value",
    "looks_like_html",
    "national_figures",
    "national_reading",
    "normalize_label",
    "NationalReading",
    "parse_page",
    "relative_heading",
    "section_years",
    "statement_years",
]
