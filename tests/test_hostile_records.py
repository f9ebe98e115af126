"""Issue 20 item 2, with real `oj run` processes: a hostile raw record (a number or a list
where a municipality belongs, a capture time in the year 9999, a NUL byte in the URL, a
100,000-character record_id) is quarantined as a failed page and named in one bounded
line; it never blocks a release nor makes one unreadable."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from helpers import RAW_DIR, run_oj

from flows import raw_archive, storage

LONG_ID = "a" * 100_000
#: (file name without .json, record fields replaced)
HOSTILE = {
    "int-municipality": ("intm", {"municipality": 12345}),
    "list-municipality": ("listm", {"municipality": ["Kalmar", "Evil"]}),
    "far-future": ("future", {"captured_at": "9999-12-31T23:59:59-14:00"}),
    "nul-url": ("nulurl", {"url": "https://kalmar.se/a\x00b.html"}),
    "long-id-inside": ("longid", {"record_id": LONG_ID}),
    # the id from the file name: as long as the filesystem allows (255 bytes)
    "long-file-name": ("b" * 250, {}),
    "newline-file-name": ("evil\ninjected line", {}),
}

MAX_LINE = 400


def _hostile_raw(tmp_path: Path, name: str, changes: dict) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(RAW_DIR, raw)
    good = json.loads(next((raw / "records").glob("*.json")).read_text("utf-8"))
    # a capture of its own (another record id), so the good pages are all still there
    record = good | {"record_id": name, "captured_at": "2026-01-02T03:04:05Z"} | changes
    (raw / "records" / f"{name}.json").write_text(json.dumps(record), "utf-8")
    return raw


def _load_all(datasets: Path) -> dict:
    return {
        name: storage.load_table(name, datasets_dir=datasets)
        for name in ("pages", "findings", "observations", "rejects")
    }


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_record_is_quarantined(prefect_server: str, tmp_path: Path, kind: str) -> None:
    name, changes = HOSTILE[kind]
    raw, datasets = _hostile_raw(tmp_path, name, changes), tmp_path / "datasets"
    first = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert first.returncode == 1, first.stderr[:2000]
    assert "Traceback" not in first.stderr
    assert "new release 1 written" in first.stdout, first.stderr[:2000]
    for line in first.stderr.splitlines() + first.stdout.splitlines():
        assert len(line) < MAX_LINE, line[:500]
    # named in exactly one line (a newline in the file name does not split it)
    (line,) = [ln for ln in first.stderr.splitlines() if "unreadable record" in ln]
    assert line.startswith("oj run: failed page: ")
    assert str(raw / "records") in line and (name[:20] in line or repr(name)[:20] in line)
    tables = _load_all(datasets)
    pages = tables["pages"]
    assert sorted(pages["parse_status"]) == ["failed"] + ["parsed"] * 5
    failed = pages[pages["parse_status"] == "failed"].iloc[0]
    assert failed["snapshot_id"] == name
    assert pd.isna(failed["municipality"]) or isinstance(failed["municipality"], str)
    assert pd.isna(failed["captured_at"])
    assert "\x00" not in str(failed["url"])
    assert len(tables["findings"]) > 0 and len(tables["observations"]) > 0
    assert list(tables["rejects"]["reason"]) == ["unreadable_record"]
    assert (datasets / "latest").exists()
    # The next run is not blocked: nothing new, and the release still reads.
    second = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, api_url=prefect_server)
    assert second.returncode == 0, second.stderr[:2000]
    assert "no new release" in second.stdout
    _load_all(datasets)


@pytest.mark.parametrize(
    "changes",
    [
        {"municipality": 12345},
        {"municipality": "x" * 101},
        {"municipality": "Kal\nmar"},
        {"captured_at": "9999-12-31T23:59:59-14:00"},
        {"captured_at": "1989-12-31T23:59:59Z"},
        {"fetched_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
        {"captured_at": "2020-01-01T00:00:00"},
        {"url": "https://kalmar.se/a\x00b"},
        {"url": "https://kalmar.se/a b"},
        {"url": "https://kalmar.se/a\x7f"},
        {"url": " https://kalmar.se/a"},
        {"url": "https://kalmar.se/" + "x" * 2100},
        {"final_url": "javascript:alert(1)"},
        {"record_id": "x" * 65},
        {"record_id": 7},
        {"http_status": 99},
        {"http_status": 600},
        {"http_status": "200"},
        {"http_status": True},
        {"size_bytes": -1},
        {"note": "n" * 1001},
        {"etag": ["a"]},
        {"content_type": 5},
        {"charset": "c" * 65},
        {"last_modified": {"a": 1}},
    ],
)
def test_every_field_is_checked_by_type_and_range(changes: dict) -> None:
    good = json.loads(next((RAW_DIR / "records").glob("*.json")).read_text("utf-8"))
    raw_archive.parse_record(json.dumps(good).encode())  # the shipped record is fine
    with pytest.raises(ValueError) as caught:
        raw_archive.parse_record(json.dumps(good | changes).encode())
    message = str(caught.value)
    assert len(message) < 200 and "\n" not in message and "\x00" not in message
