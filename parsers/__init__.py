"""Pure parsers for Öppna jämförelser pages: text or HTML in, frozen records out.

No file, network, clock or Prefect here, so the same input always gives the same
output and a notebook can call `parse_page` directly.
"""

from parsers.decode import PageError, decode_page, looks_like_html
from parsers.numbers import find_levels, local_value, national_figures
from parsers.page import parse_page, section_year
from parsers.records import (
    FLAGS,
    LOCAL_STATUSES,
    REJECT_REASONS,
    SURVEY_YEAR_BASES,
    Finding,
    ParsedPage,
    Reject,
)
from parsers.status import local_status

#: Bump when a change can alter any parsed record: the flow re-parses the raw archive
#: into a new release when this differs from the version that parsed it.
PARSER_VERSION = "1.0.0"

__all__ = [
    "FLAGS",
    "LOCAL_STATUSES",
    "PARSER_VERSION",
    "REJECT_REASONS",
    "SURVEY_YEAR_BASES",
    "Finding",
    "PageError",
    "ParsedPage",
    "Reject",
    "decode_page",
    "find_levels",
    "local_status",
    "local_value",
    "looks_like_html",
    "national_figures",
    "parse_page",
    "section_year",
]
