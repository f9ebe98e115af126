"""`oj parse`: JSON Lines on stdout, one clear stderr line per bad file, the rest still parsed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import HTML_DIR, RAW_DIR, golden, seed_records

from flows.cli import PARSE_KEYS, main


def test_parse_shipped_page_uses_archive_metadata(capsys) -> None:
    seed_id, record = next(iter(seed_records().items()))
    object_file = RAW_DIR / "objects" / record.sha256[:2] / record.sha256
    assert main(["parse", str(object_file)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(row) for row in rows] == [set(PARSE_KEYS)] * len(rows)
    assert rows == [{k: g[k] for k in PARSE_KEYS} for g in golden(seed_id)]
    assert rows[0]["url"] == record.url


def test_bad_files_are_named_and_the_others_still_parsed(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    not_a_page = tmp_path / "notes.txt"
    not_a_page.write_text("Inköpslista\n\nMjölk, bröd och ost.\n", "utf-8")
    missing = tmp_path / "missing.html"
    good = HTML_DIR / "003_li_br_nocharset.html"  # Windows-1252 without a charset

    status = main(
        ["parse", str(empty), str(binary), str(good), str(not_a_page), str(missing), str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 2  # a file named that is not there (or a folder): a usage error
    errors = captured.err.splitlines()
    assert len(errors) == 5
    for path, words in [
        (empty, "empty"),
        (binary, "binary"),
        (not_a_page, "not an Öppna"),
        (missing, "No such file"),
        (tmp_path, "Is a directory"),
    ]:
        assert any(str(path) in line and words in line for line in errors), (path, errors)
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 6
    assert rows[0]["area"] == "Ekonomiskt bistånd"  # "å" decoded from Windows-1252


def test_table_format_and_flags_from_the_command_line() -> None:
    # Through the installed entry point, as a user runs it.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "parse",
            "--format",
            "table",
            "--url",
            "https://example.se/sida.html",
            "--municipality",
            "Kalmar",
            str(HTML_DIR / "002_li_br_cp1252.html"),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert "Psykisk funktionsnedsättning - socialpsykiatri · Kalmar" in result.stdout
    assert "answer_mismatch_suspected" in result.stdout


def test_captured_at_is_evidence_of_the_survey_year(tmp_path: Path, capsys) -> None:
    # A page with no dates: the capture time, read with the publication calendar, dates
    # its current section (September 2021 -> 2021); a bad time is refused with exit 2.
    page = tmp_path / "page.txt"
    page.write_text(
        "Ekonomiskt bistånd\n\nÅrets resultat visar att:\n"
        " • 45 procent av kommunerna har en plan.\n  I Kalmar finns en plan.\n",
        "utf-8",
    )
    assert main(["parse", str(page), "--captured-at", "2021-09-01T10:00:00Z"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["survey_year"], row["survey_year_basis"]) == (2021, "captured_at")
    assert main(["parse", str(page)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["survey_year"], row["survey_year_basis"]) == (None, "none")
    for bad in ("2021-09-01T10:00:00", "yesterday"):
        with pytest.raises(SystemExit) as exit_:
            main(["parse", str(page), "--captured-at", bad])
        assert exit_.value.code == 2
        assert "--captured-at" in capsys.readouterr().err


def _table_years(stdout: str) -> list[tuple[str, str]]:
    """(survey year, basis) of each finding in `oj parse --format table`, by its header."""
    header = re.compile(r"^  .*  \(survey year (\S+), (\S+)\)$")
    finding = re.compile(r"^ +\d+\. ")
    years, current = [], None
    for line in stdout.splitlines():
        if found := header.match(line):
            current = found.groups()
        elif finding.match(line):
            years.append(current)
    return years


def test_table_format_shows_each_findings_own_survey_year() -> None:
    # A page with two "Årets resultat visar att:" sections of different survey years (a
    # new year's bullets above last year's, under the same heading): the table printed
    # the first section's year over both, while the JSON gave the second its own.
    from helpers import run_oj

    files = [RAW_DIR / "objects" / r.sha256[:2] / r.sha256 for r in seed_records().values()]
    as_json = run_oj("parse", *files)
    as_table = run_oj("parse", "--format", "table", *files)
    assert (as_json.returncode, as_table.returncode) == (0, 0), as_json.stderr + as_table.stderr
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    expected = [(str(row["survey_year"]), row["survey_year_basis"]) for row in rows]
    assert _table_years(as_table.stdout) == expected
    # the shipped pages hold such a page: one heading, several years
    years_by_section: dict[tuple[str, str], set] = {}
    for row in rows:
        years_by_section.setdefault((row["url"], row["section"]), set()).add(row["survey_year"])
    assert any(len(years) > 1 for years in years_by_section.values())
