"""A segment read column by column (`raw_archive.segment_table`) gives the records the
line-by-line path (`raw_archive.parse_segment`) gives, or none at all.

Planning a first run read each record in Python (JSON, `check_record`, a record object):
~17 µs a capture, 17 s at 1,000,000 captures. The column path must never accept a line
the record-by-record path refuses, nor read a value otherwise: each odd line below goes
in between two good ones, and the segment must then fall back to the line path, which
names the bad line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from flows import pipeline, raw_archive

SHA = "ab" * 32
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _record(number: int, **changes: object) -> dict:
    record = {
        "record_id": f"rec{number:04d}",
        "sha256": SHA,
        "url": "https://kalmar.se/omsorg/oppna-jamforelser.html",
        "municipality": "Kalmar",
        "source": "wayback",
        "captured_at": f"2021-09-01T00:00:{number % 60:02d}Z",
        "fetched_at": "2026-11-30T10:00:00.123456Z",
        "http_status": 200,
        "content_type": "text/html",
        "size_bytes": 1234,
    }
    record.update(changes)
    return record


def _line(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def _segment(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def _line_path(data: bytes, bad: list | None = None) -> list[raw_archive.SnapshotRecord]:
    return raw_archive.parse_segment("", "s.jsonl", data, bad)


def test_good_lines_give_the_same_records_both_ways() -> None:
    lines = [
        _line(_record(1)),
        _line(_record(2, captured_at="2021-09-01T02:00:00+02:00")),  # the same instant as 1
        _line(_record(3, captured_at="2021-09-01T00:00:00.5Z", municipality="Malmö")),
        _line(_record(4, captured_at="2021-09-01T00:00:00.123456-03:30", municipality=None)),
        _line(_record(5, captured_at=None, http_status=None, size_bytes=0)),
        _line(_record(6, captured_at="2021-09-01T00:00:00+00:00", note='a "quoted"\ttab/')),
        # keys a record does not have are left out by both (as `from_dict` does)
        _line(_record(7, extra={"nested": [1, 2]}, raw_segment="elsewhere.jsonl")),
        _line(_record(8, final_url="https://www.kalmar.se/omsorg/", etag='W/"abc"')),
    ]
    data = _segment(*lines)
    table = raw_archive.segment_table("s.jsonl", data, NOW)
    assert table is not None
    expected = _line_path(data)
    got = raw_archive.table_records(table)
    assert got == expected
    assert [r.raw_segment for r in got] == ["s.jsonl"] * len(lines)
    assert table.column("captured_moment").to_pylist() == [r.captured_datetime for r in expected]
    # and a table built from the records is the same table
    assert raw_archive.records_table(expected).equals(table)


ODD_LINES = {
    # what the line path refuses: the column path must not take the segment
    "not JSON": b'{"record_id": "x"',
    "a JSON array": b"[1, 2]",
    "municipality a number": _line(_record(90, municipality=12345)),
    "http_status a boolean": _line(_record(90, http_status=True)),
    "http_status a string": _line(_record(90, http_status="200")),
    "http_status out of range": _line(_record(90, http_status=99)),
    "size_bytes negative": _line(_record(90, size_bytes=-1)),
    "size_bytes a float": _line(_record(90, size_bytes=1.0)),
    "record_id with a slash": _line(_record(90, record_id="../x")),
    "record_id too long": _line(_record(90, record_id="a" * 65)),
    "record_id twice": _line(_record(1)),
    "unknown source": _line(_record(90, source="ftp")),
    "sha256 upper case": _line(_record(90, sha256="AB" * 32)),
    "sha256 missing": _line({k: v for k, v in _record(90).items() if k != "sha256"}),
    "captured_at without a zone": _line(_record(90, captured_at="2021-09-01T00:00:00")),
    "captured_at before 1990": _line(_record(90, captured_at="1989-12-31T23:59:59Z")),
    "captured_at after tomorrow": _line(_record(90, captured_at="2027-01-01T00:00:00Z")),
    "captured_at 30 February": _line(_record(90, captured_at="2021-02-30T00:00:00Z")),
    "fetched_at not a time": _line(_record(90, fetched_at="yesterday")),
    "url with a space": _line(_record(90, url="https://kalmar.se/a b")),
    "url not http": _line(_record(90, url="ftp://kalmar.se/")),
    "url with surrounding space": _line(_record(90, url=" https://kalmar.se/")),
    "final_url not a URL": _line(_record(90, final_url="javascript:alert(1)")),
    "municipality blank": _line(_record(90, municipality="  ")),
    "municipality with a control character": _line(_record(90, municipality="Kal\x85mar")),
    "note too long": _line(_record(90, note="x" * 1001)),
    "a key twice": b'{"record_id": "rec0090", ' + _line(_record(90))[1:],
    "not UTF-8": _line(_record(90, note="é")).replace("é".encode(), b"\xe9"),
    "a byte-order mark": b"\xef\xbb\xbf" + _line(_record(90)),
    "two records on one line": _line(_record(90)) + b" " + _line(_record(91)),
    # what the line path reads but the column path leaves to it
    "a blank line": b"",
    "a line of spaces": b"   \t",
    "a \\u escape": _line(_record(90, note="\u00e9")).replace("é".encode(), b"\\u00e9"),
    "a lone surrogate": _line(_record(90)).replace(b'"Kalmar"', b'"Kalmar\\ud800"'),
    "a time without seconds": _line(_record(90, captured_at="2021-09-01T00:00+00:00")),
    "a time with a lower-case zone": _line(_record(90, captured_at="2021-09-01T00:00:00z")),
    "a time with seven digits": _line(_record(90, captured_at="2021-09-01T00:00:00.1234567Z")),
}


@pytest.mark.parametrize("where", [0, 1, 2], ids=["first", "between", "last"])
@pytest.mark.parametrize("odd", list(ODD_LINES), ids=list(ODD_LINES))
def test_an_odd_line_sends_its_segment_to_the_line_path(odd: str, where: int) -> None:
    # Where matters: Arrow's reader skips a byte-order mark at the start of the file and
    # no other.
    lines = [_line(_record(1)), _line(_record(2))]
    lines.insert(where, ODD_LINES[odd])
    data = _segment(*lines)
    assert raw_archive.segment_table("s.jsonl", data, NOW) is None
    # what a plan then reads is what the line path reads, bad lines named as there
    bad_lines: list[raw_archive.BadRecord] = []
    expected = _line_path(data, bad_lines)
    assert {"rec0001", "rec0002"} <= {r.record_id for r in expected}


def test_a_plan_reads_the_same_records_either_way(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    good = _segment(*(_line(_record(n)) for n in range(1, 6)))
    odd = _segment(_line(_record(10)), ODD_LINES["municipality a number"], _line(_record(11)))
    (raw / "segments").mkdir(parents=True)
    (raw / "segments" / "a.jsonl").write_bytes(good)
    (raw / "segments" / "b.jsonl").write_bytes(odd)
    bad_tables: list[raw_archive.BadRecord] = []
    tables = list(raw_archive.iter_new_tables(raw, bad=bad_tables))
    bad_lists: list[raw_archive.BadRecord] = []
    lists = list(raw_archive.iter_new(raw, bad=bad_lists))
    assert [raw_archive.table_records(t) for t in tables] == lists
    assert [(b.record_id, b.reason) for b in bad_tables] == [
        (b.record_id, b.reason) for b in bad_lists
    ]
    assert [b.record_id for b in bad_tables] == ["b-L2"]


def _archive_of_many_shapes(raw: Path) -> None:
    """Versions captured across segments out of order, unknown times, one instant
    written two ways (the order then falls to the text, then the URL, then the id), and a
    record file beside the segments."""
    other = "cd" * 32
    url_b = "https://kalmar.se/omsorg/ekonomiskt-bistand.html"
    segments = {
        "a.jsonl": [_record(1, captured_at="2021-10-01T00:00:00Z"),
                    _record(2, sha256=other, captured_at="2021-11-01T00:00:00Z"),
                    _record(3, url=url_b, captured_at=None)],
        "b.jsonl": [_record(4, captured_at="2021-09-01T02:00:00+02:00"),
                    _record(5, captured_at="2021-09-01T00:00:00Z"),
                    _record(6, sha256=other, captured_at="2021-11-01T00:00:00Z"),
                    _record(7, url=url_b, captured_at=None)],
        "c.jsonl": [_record(8, url=url_b, captured_at="2020-01-01T00:00:00Z"),
                    _record(9, sha256=other, captured_at="2021-12-01T00:00:00.000001Z")],
    }  # fmt: skip
    (raw / "segments").mkdir(parents=True)
    for name, records in segments.items():
        (raw / "segments" / name).write_bytes(_segment(*(_line(r) for r in records)))
    (raw / "records").mkdir()
    in_file = _record(10, sha256="ef" * 32, captured_at="2021-08-01T00:00:00Z")
    (raw / "records" / "rec0010.json").write_text(json.dumps(in_file))


@pytest.mark.parametrize("known_first", [False, True])
def test_planning_on_columns_splits_versions_as_records_do(
    tmp_path: Path, known_first: bool
) -> None:
    raw = tmp_path / "raw"
    _archive_of_many_shapes(raw)
    known: set[str] = set()
    if known_first:  # a version published before: every capture of it is a recapture
        known = {pipeline.version_id(_record(0)["url"], "cd" * 32)}
    todo, again = pipeline.plan_versions(raw_archive.iter_new_tables(raw), known)
    expected_todo, expected_again = pipeline.split_versions(raw_archive.read_all(raw), known)
    assert todo == expected_todo
    assert [r.raw_segment for r in todo] == [r.raw_segment for r in expected_todo]
    expected = pipeline.recapture_table(expected_again)
    order = [("captured_at", "ascending", "at_start"), ("snapshot_id", "ascending")]
    assert again.to_pylist() == expected.take(pc.sort_indices(expected, sort_keys=order)).to_pylist()
    # the earliest capture of each version is parsed, unknown times first: 09-01
    # 00:00:00Z and 02:00:00+02:00 are one instant, "...T00..." sorts first as text;
    # rec0002 and rec0006 are one time as written, one URL: the id decides
    first = {"rec0005", "rec0003", "rec0010"}
    assert {r.record_id for r in todo} == (first if known_first else first | {"rec0002"})
