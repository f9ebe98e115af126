"""Shared test helpers: the shipped seed pages in raw/ and their golden findings."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from flows import raw_archive
from parsers import PARSER_VERSION, ParsedPage, parse_page

ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = ROOT / "raw"
GOLDEN_DIR = ROOT / "tests" / "golden"
HTML_DIR = ROOT / "tests" / "fixtures" / "html"


def seed_records() -> dict[str, raw_archive.SnapshotRecord]:
    """The shipped seed snapshots by archive id ("000_9204bfc52bc1e635", ...)."""
    out = {}
    for record in raw_archive.iter_records(RAW_DIR):
        match = re.search(r"archive id (\S+)", record.note or "")
        if record.source == "seed" and match:
            out[match.group(1)] = record
    return dict(sorted(out.items()))


def parse_seed(record: raw_archive.SnapshotRecord, data: bytes | None = None) -> ParsedPage:
    if data is None:
        data = raw_archive.read_object(RAW_DIR, record.sha256)
    return parse_page(data, url=record.url, municipality=record.municipality)


def golden(seed_id: str) -> list[dict]:
    path = GOLDEN_DIR / f"{seed_id}.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def publish(
    datasets_dir: Path,
    records: list[raw_archive.SnapshotRecord] | None = None,
    *,
    mode: str = "append",
    parser_version: str = PARSER_VERSION,
    overrides=None,
) -> int:
    """Publish a release of seed snapshots without Prefect (the flow's plain functions)."""
    import uuid
    from datetime import UTC, datetime

    from flows import pipeline, storage

    if records is None:
        records = list(seed_records().values())
    writer = storage.ReleaseWriter(
        datasets_dir,
        mode=mode,
        parser_version=parser_version,
        run_id=uuid.uuid4().hex,
        overrides=overrides,
        started_at=datetime.now(UTC),
    )
    writer.write(pipeline.parse_snapshots(RAW_DIR, records))
    return pipeline.publish_release(writer, len(records))[0]


def edited_history(tmp_path: Path) -> tuple[Path, list[raw_archive.SnapshotRecord]]:
    """Seed 000 as captured four times, edited between captures as real pages are."""
    seed = next(r for r in seed_records().values() if r.url.endswith("vald-i-nara-relationer.html"))
    text = raw_archive.read_object(RAW_DIR, seed.sha256).decode("utf-8")
    answer_no = "I Kalmar finns inte en rutin för hur handläggare ska säkra skolgången"
    edits = [
        text,
        # the municipality changed its answer: no -> yes
        text.replace(answer_no, "I Kalmar finns en rutin för hur handläggare ska säkra skolgången"),
        # a bullet dropped (the 2019 fortbildning bullet), the national figure corrected
        # for the same survey year (63 -> 64), and a statement reworded
        text.replace(answer_no, "I Kalmar finns en rutin för hur handläggare ska säkra skolgången")
        .replace("Allt fler kommuner, 63 procent,", "Allt fler kommuner, 64 procent,")
        .replace(
            " • De flesta kommuner uppger att de under det senaste året har genomfört fortbildning",
            " • XX",
        )  # fmt: skip
        .replace(
            "8 procent av kommunerna uppger att de inom området våld i nära relationer "
            "systematiskt följt upp",
            "8 procent av kommunerna har inom området våld i "
            "nära relationer systematiskt följt upp",
        ),  # fmt: skip
    ]
    raw = tmp_path / "raw"
    records = []
    for day, body in enumerate(edits, start=1):
        if " • XX" in body:  # drop that bullet and its answer line entirely
            lines = body.splitlines()
            at = next(i for i, line in enumerate(lines) if line.startswith(" • XX"))
            body = "\n".join(lines[:at] + lines[at + 2 :])
        record, _ = raw_archive.add_snapshot(
            raw, body.encode("utf-8"), url=seed.url, source="wayback", municipality="Kalmar",
            captured_at=datetime(2020, 7, day, tzinfo=UTC))  # fmt: skip
        records.append(record)
    return raw, records


def overlapping_runs(
    command: list[str], env: dict[str, str], release: int, stagger: float = 0.0
) -> list[tuple[str, str]]:
    """Start the same `oj run` twice, the second `stagger` seconds after the first; both
    must succeed and exactly one must write `release`. Their (stdout, stderr)."""
    import subprocess
    import time

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    first = start()
    time.sleep(stagger)
    second = start()
    outputs = [first.communicate(timeout=600), second.communicate(timeout=600)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    assert sum(f"new release {release} written" in out for out, _ in outputs) == 1, outputs
    return outputs


def check_store(datasets, raw) -> None:
    """One release per number, none skipped; the latest release holds each snapshot of
    the archive exactly once, and the counts its `runs` row states. Folders or buckets."""
    from flows import storage

    runs = storage.releases(datasets)
    assert list(runs["release"]) == list(range(1, len(runs) + 1))
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert pages["snapshot_id"].is_unique
    assert set(pages["snapshot_id"]) == set(raw_archive.record_names(raw))
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert findings["finding_id"].is_unique
    assert int(runs["n_pages"].iloc[-1]) == len(pages)
    assert int(runs["n_findings"].iloc[-1]) == len(findings)


def wait_for_deployment(process, name: str, timeout: float = 120):
    """The deployment `name` once the `oj serve` process has registered it."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                return client.read_deployment_by_name(name)
            except ObjectNotFound:
                assert time.monotonic() < deadline, "deployment never registered"
                time.sleep(1)


def stop_serving(process, deployment: str = "nightly/nightly") -> None:
    """Stop `oj serve` as an operator does (SIGINT), by its PID; it must exit 0. Its
    deployment is deleted from the session's server, so the next test registers anew."""
    import contextlib
    import signal
    import subprocess

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
            client.delete_deployment(client.read_deployment_by_name(deployment).id)
    assert process.returncode == 0, process.stdout.read()


#: `oj` as a command, run by the interpreter of the tests.
OJ = [sys.executable, "-m", "flows.cli"]


def oj_env(api_url: str | None) -> dict[str, str]:
    """The tests' environment for an `oj` command: the given Prefect API, or none (the
    command starts its own)."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return env | ({"PREFECT_API_URL": api_url} if api_url else {})


def run_oj(*args: object, api_url: str | None = None, cwd: Path = ROOT, timeout: float = 600):
    """Run `oj ARGS...` in a fresh process; its CompletedProcess (text output)."""
    import subprocess

    return subprocess.run(
        [*OJ, *map(str, args)], cwd=cwd, env=oj_env(api_url), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def write_warc(path: Path, pages: dict[str, bytes]) -> Path:
    """A gzipped WARC file of HTTP 200 HTML responses, one per URL, captured 2021-03-04."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for uri, body in pages.items():
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                       protocol="HTTP/1.1")  # fmt: skip
            writer.write_record(writer.create_warc_record(
                uri, "response", payload=BytesIO(body), http_headers=headers,
                warc_headers_dict={"WARC-Date": "2021-03-04T05:06:07Z"},
            ))  # fmt: skip
    return path
