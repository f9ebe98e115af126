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

#: Reads release.json, then every file it names, over and over, with pyarrow's own S3
#: client (no s3fs): counts reads whose files name another release than the manifest, and
#: files torn by an overwrite between two ranged reads of one file.
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
        seen = set()
        for name, entry in sorted(manifest["files"].items()):
            meta = pq.read_schema(f"{root}/{entry.get('path', name)}", filesystem=fs).metadata
            seen.add(int(meta[b"oppna_jamforelser.release"]))
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
    if seen != {manifest["release"]}:
        mixed += 1
        examples.append([manifest["release"], sorted(seen)])
figures = {"reads": reads, "mixed": mixed, "torn": torn, "gone": gone, "cut": cut}
print(json.dumps(figures | {"examples": examples[:3]}))
"""


def _release_folders(datasets: str) -> set[int]:
    folder = location.join(datasets, storage.LATEST_DIR)
    found = set()
    for path in location.find_files(folder):
        parts = str(path)[len(str(folder)) :].strip("/").split("/")
        if len(parts) == 2 and parts[0].isdigit():
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
    assert manifest["files"]["findings.parquet"]["path"] == f"{len(records)}/findings.parquet"
    # Folders older than the previous release are removed once the pointer moved on.
    assert _release_folders(datasets) == {len(records) - 1, len(records)}
    assert verify.verify_latest(datasets) == []


def test_bucket_latest_is_checked_file_by_file_and_healed(bucket: str) -> None:
    datasets = f"{bucket}/datasets"
    records = list(seed_records().values())
    publish(datasets, records[:2])
    latest = f"{datasets}/latest"
    # The file the manifest names, and the flat copy for one-table readers, both checked.
    location.write_bytes(f"{latest}/1/findings.parquet", b"not the release")
    location.write_bytes(f"{latest}/observations.parquet", b"edited")
    problems = verify.verify_latest(datasets)
    assert problems == [
        f"{latest}/1/findings.parquet: differs from release 1 as published (sha256 recorded "
        "in release.json)",
        f"{latest}/observations.parquet: differs from release 1 as published (sha256 "
        "recorded in release.json)",
    ]
    # A no-op run heals it.
    assert storage.publish_latest(datasets) == 1
    assert verify.verify_latest(datasets) == []
    # A manifest path that leaves latest/ is never followed: the flat copy is read instead.
    manifest = storage.latest_manifest(datasets)
    manifest["files"]["pages.parquet"]["path"] = "../pages/_delta_log/x.parquet"
    location.write_bytes(f"{latest}/release.json", json.dumps(manifest).encode())
    assert verify.verify_latest(datasets) == []


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
    assert set(TABLES) == {n.removesuffix(".parquet") for n in namespace["manifest"]["files"]}
