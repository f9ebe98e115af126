"""The steps of one release timed one by one (wall and CPU seconds), without Prefect:
plan, parse and write, close the data tables, plan the derivation, write the derived
tables, compact, commit (the runs row), `latest/`, the quality counts. Runs on a copy of
DATASETS (removed after).

    .venv/bin/python bench/release_phases.py RAW DATASETS [--profile out.prof]

RAW: e.g. the archive DATASETS was built from plus 20 new pages (`bench.run.add_new_pages`).
"""

from __future__ import annotations

import cProfile
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import history, pipeline, report, storage  # noqa: E402
from parsers import PARSER_VERSION  # noqa: E402


def release_phases(raw: str, datasets: Path) -> dict[str, float]:
    """Seconds per step of one release of the archive `raw` into `datasets`."""
    seconds: dict[str, float] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        # Wall seconds, and the process's CPU seconds (every thread: deltalake's and
        # polars' too), which a machine shared with other work inflates far less.
        nonlocal clock, cpu_clock
        seconds[name] = round(time.perf_counter() - clock, 3)
        seconds[f"{name}_cpu"] = round(time.process_time() - cpu_clock, 3)
        clock, cpu_clock = time.perf_counter(), time.process_time()

    plan = pipeline.plan_run(raw, datasets, PARSER_VERSION, history.Overrides().sha256)
    lap("plan")
    writer = storage.ReleaseWriter(
        datasets, mode=plan.mode, parser_version=PARSER_VERSION, run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
    )  # fmt: skip
    if plan.recaptures:
        writer.write(pipeline.recapture_rows(plan.recaptures, []))
    if plan.records:
        writer.write(pipeline.parse_snapshots(raw, plan.records, []))
    lap("parse_and_write")
    versions = writer.close_data_tables()
    lap("close_data_tables")
    reader = storage.DerivationReader(
        writer.datasets_dir, writer.base, versions["findings"], versions["pages"]
    )
    derivation = history.plan_derivation(
        reader, writer.overrides, pipeline.full_derivation_reason(writer)
    )
    lap("plan_derivation")
    versions |= writer.write_derived(derivation)  # derives each table as it writes it
    lap("derive_and_write_derived")
    versions |= writer.compact_fragmented()
    lap("compact")
    release = writer.commit(
        n_pages_new=len(plan.records), versions=versions, derivation=derivation.mode
    )
    lap("commit")
    storage.publish_latest(datasets)
    lap("latest")
    report.quality_counts(datasets, release)
    lap("quality_counts")
    seconds["total"] = round(sum(v for k, v in seconds.items() if not k.endswith("_cpu")), 3)
    seconds["total_cpu"] = round(sum(v for k, v in seconds.items() if k.endswith("_cpu")), 3)
    print(derivation.mode, derivation.reason)
    return seconds


def main(argv: list[str]) -> int:
    raw, source = argv[0], argv[1]
    scratch = Path(tempfile.mkdtemp(prefix="release-phases-"))
    try:
        datasets = scratch / "datasets"
        shutil.copytree(source, datasets)
        profile = cProfile.Profile() if "--profile" in argv else None
        if profile is not None:
            profile.enable()
        print(release_phases(raw, datasets))
        if profile is not None:
            profile.disable()
            profile.dump_stats(argv[argv.index("--profile") + 1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
