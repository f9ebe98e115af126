"""`latest/` in a bucket (issue 20 item 5): one folder per release, `release.json` written
last as the pointer, so a reader of several tables never mixes two releases.

Runs against the real local S3 server (moto's, the `bucket` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, publish, seed_records

from flows import location, storage, verify
from flows.schemas import TABLES

#: Reads release.json, then every part it names, over and over, with pyarrow's own S3
#: client (no s3fs): counts reads whose parts do not add up to the rows the manifest says
#: (parts of another release), and files torn by an overwrite between two ranged reads.
_READER = r"""
import json, os, sys, time
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
latest, stop = sys.argv[1], sys.argv[2]
fs, root = pafs.FileSystem.from_uri(latest)
reads = mixed = torn = gone = cut = 0
examples = []
while not os.path.exists(stop):
    try:
        try:
            with fs.open_input_stream(f"{root}/release.json") as stream:
                manifest = json.load(stream)
        except json.JSONDecodeError:
            # the size is looked up before the GET: a replacement in between gives a cut
            # copy of the new manifest, which never parses (the documented recipe re-reads)
            cut += 1
            continue
        wrong = []
        for name, table in sorted(manifest["tables"].items()):
            # the table's folder, as one-table readers read it
            rows = pq.read_table(f"{root}/{table['path']}", filesystem=fs).num_rows
            if rows != table["rows"]:
                wrong.append([name, rows, table["rows"]])
    except pa.ArrowInvalid:
        # an object overwritten between the ranged GETs of one file (footer length, then
        # footer): "Parquet magic bytes not found in footer"
        torn += 1
        continue
    except (FileNotFoundError, OSError):
        gone += 1  # nothing published yet, or a folder removed under a slow reader
        time.sleep(0.01)
        continue
    reads += 1
    if wrong:
        mixed += 1
        examples.append([manifest["release"], wrong])
figures = {"reads": reads, "mixed": mixed, "torn": torn, "gone": gone, "cut": cut}
print(json.dumps(figures | {"examples": examples[:3]}))
"""


def _release_folders(datasets: str) -> set[int]:
    folder = location.join(datasets, storage.LATEST_DIR)
    found = set()
    for path in location.find_files(folder):
        parts = str(path)[len(str(folder)) :].strip("/").split("/")
        if len(parts) == 3 and parts[0].isdigit():
            found.add(int(parts[0]))
    return found


def test_a_reader_of_a_bucket_latest_via_its_manifest_never_mixes_releases(
    bucket: str, tmp_path: Path
) -> None:
    # Objects were overwritten in place: a reader of several tables read a mix of two
    # releases in 73 of 1,863 reads during runs.
    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    publish(datasets, records[:1])
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, f"{datasets}/latest", str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for record in records[1:]:
            publish(datasets, [record])
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-2000:]
    figures = json.loads(out)
    print("bucket reader:", figures)
    assert figures["reads"] >= 10, figures
    assert figures["mixed"] == figures["torn"] == 0, figures
    manifest = storage.latest_manifest(datasets)
    assert manifest["release"] == len(records)
    assert manifest["tables"]["findings"]["path"] == f"{len(records)}/findings.parquet"
    # Folders older than the previous release are removed once the pointer moved on.
    assert _release_folders(datasets) == {len(records) - 1, len(records)}
    assert verify.verify_latest(datasets) == []


def test_bucket_latest_is_checked_file_by_file_and_healed(bucket: str) -> None:
    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2])
    latest = f"{datasets}/latest"
    manifest = storage.latest_manifest(datasets)
    part = manifest["files"][f"findings.parquet/{manifest['tables']['findings']['parts'][0]}"]
    location.write_bytes(f"{latest}/{part['path']}", b"not the release")
    stray = f"{latest}/1/observations.parquet/part-0.parquet"
    location.write_bytes(stray, b"one more file in a table folder")
    # layout 1's one-file copy, from before: removed by the next publish
    location.write_bytes(f"{latest}/pages.parquet", b"old")
    problems = verify.verify_latest(datasets)
    assert problems == [
        f"{latest}/{part['path']}: differs from release 1 as published (sha256 recorded "
        "in release.json)",
        f"{stray}: not a part of release 1 (a reader of 1/observations.parquet reads it too)",
    ]
    # A no-op run heals it, in a folder of its own: nothing a reader holds is overwritten.
    assert storage.publish_latest(datasets) == 1
    assert verify.verify_latest(datasets) == []
    healed = storage.latest_manifest(datasets)
    assert healed["tables"]["findings"]["path"] == "1.1/findings.parquet"
    assert location.read_bytes(stray) == b"one more file in a table folder"  # not ours
    assert not location.exists(f"{latest}/pages.parquet")
    # A manifest path that leaves latest/ is never followed.
    key = f"pages.parquet/{healed['tables']['pages']['parts'][0]}"
    healed["files"][key]["path"] = "../pages/_delta_log/x.parquet"
    location.write_bytes(f"{latest}/release.json", json.dumps(healed).encode())
    part_path = f"{latest}/1.1/{key}"  # then no longer a part the manifest names
    assert verify.verify_latest(datasets) == [
        f"{latest}/release.json: {key}: no valid path",
        f"{part_path}: not a part of release 1 (a reader of 1.1/pages.parquet reads it too)",
    ]


def test_a_bucket_release_copies_the_parts_it_keeps(bucket: str) -> None:
    # Each part the previous release holds too is copied by the store (CopyObject), not
    # written again; only the parts of new Delta files are.
    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    publish(datasets, records[:3])
    first = storage.latest_manifest(datasets)
    publish(datasets, records[3:])
    second = storage.latest_manifest(datasets)
    kept = first["files"].keys() & second["files"].keys()
    assert any(key.startswith("pages.parquet/") for key in kept)
    for key in kept:
        assert first["files"][key]["sha256"] == second["files"][key]["sha256"]
        assert first["files"][key]["md5"] == second["files"][key]["md5"]
        assert second["files"][key]["path"] == f"2/{key}"
    assert verify.verify_latest(datasets) == []


def test_a_run_with_nothing_new_checks_a_bucket_latest_by_listing(bucket: str) -> None:
    # A run with nothing new read every part of latest/ to hash it: 283 GETs, 4.3 s at
    # 1,000,000 captures against the local S3 server. It compares each part's listed
    # size and ETag (the MD5 of a single-part upload, kept by a copy) with the manifest,
    # and reads only a part that differs; `oj verify` still reads every byte.
    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    publish(datasets, records[:3])
    publish(datasets, records[3:])  # parts copied from release 1's folder, and new ones
    assert storage.latest_problems(datasets, 2, deep=False) == []
    manifest = storage.latest_manifest(datasets)
    entry = manifest["files"][f"pages.parquet/{manifest['tables']['pages']['parts'][0]}"]
    target = f"{datasets}/latest/{entry['path']}"
    data = location.read_bytes(target)
    location.write_bytes(target, data[:-1] + bytes([data[-1] ^ 1]))  # one bit, same size
    expected = [
        f"{target}: differs from release 2 as published (sha256 recorded in release.json)"
    ]
    assert storage.latest_problems(datasets, 2, deep=False) == expected
    assert verify.verify_latest(datasets) == expected


def _snippet() -> str:
    text = (ROOT / "docs" / "using-the-dataset.md").read_text("utf-8")
    found = re.search(r"```python\n(# Several tables of ONE release.*?)```", text, re.DOTALL)
    assert found, "docs/using-the-dataset.md: the release.json recipe is gone"
    return found.group(1)


def test_the_documented_manifest_recipe_reads_one_release_on_a_folder_and_a_bucket(
    bucket: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    records = list(seed_records().values())
    local, remote = tmp_path / "datasets", f"{bucket}/datasets"
    for datasets in (local, remote):
        publish(datasets, records[:1])
        publish(datasets, records[1:3])
    monkeypatch.chdir(tmp_path)
    code = _snippet()
    for datasets in ("datasets", remote):
        namespace: dict = {}
        exec(code.replace('"datasets/latest"', f'"{datasets}/latest"'), namespace)  # noqa: S102
        frames = namespace["frames"]
        assert namespace["manifest"]["release"] == 2
        expected = storage.get_release(datasets)
        assert len(frames["findings"]) == expected["n_findings"]
        assert len(frames["observations"]) == len(
            storage.load_table("observations", None, datasets)
        )
    assert capsys.readouterr().out.count("release 2 ") == 2
    assert set(TABLES) == set(namespace["manifest"]["tables"])
