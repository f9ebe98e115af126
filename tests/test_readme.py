"""The README's analyst snippets run as written, against a published dataset."""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers import ROOT, golden, publish, seed_records


def run_readme_snippet(opening: str, cwd: Path) -> dict:
    """Run the README's ```python block that starts with `opening` (a regex) in `cwd`."""
    readme = (ROOT / "README.md").read_text("utf-8")
    snippet = re.search(rf"```python\n({opening}.*?)```", readme, re.DOTALL).group(1)
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        namespace: dict = {}
        exec(compile(snippet, "README.md", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def test_readme_first_commands_are_the_contract() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL).group(1).splitlines()
    assert first_block[0].endswith("oj run")
    assert first_block[1] == ".venv/bin/pytest"
    assert ".venv/bin/pytest" in (ROOT / ".ci" / "run").read_text("utf-8")


def test_readme_python_snippets_run(tmp_path: Path) -> None:
    publish(tmp_path / "datasets")
    namespace = run_readme_snippet(r"# pandas", tmp_path)
    total = sum(len(golden(seed_id)) for seed_id in seed_records())
    assert len(namespace["findings"]) == total
    assert namespace["findings_pl"].height == total
    assert len(namespace["pages_r1"]) == len(seed_records())
    findings_ds = namespace["findings_ds"]  # noqa: F841 - DuckDB finds it by name
    summary = (
        namespace["duckdb"]
        .sql("SELECT count(*) FROM findings_ds WHERE national_percent IS NOT NULL")
        .fetchall()[0]
    )
    assert 0 < summary[0] <= total


def test_readme_researcher_snippet_runs(tmp_path: Path) -> None:
    from flows import history

    publish(
        tmp_path / "datasets", overrides=history.load_overrides(ROOT / "indicator_overrides.toml")
    )
    namespace = run_readme_snippet(r"from flows.storage import load_table\n\nindicators", tmp_path)
    assert sorted(namespace["over_time"]["survey_year"].tolist()) == [2018, 2019, 2020]


def test_readme_documents_every_basis_flag_and_comparison() -> None:
    # The finding record's fixed vocabularies live in parsers/records.py (and, through
    # flows/schemas.py, in the Delta field metadata); the README must name every value.
    from parsers import FLAGS, NATIONAL_COMPARISONS, SURVEY_YEAR_BASES

    readme = (ROOT / "README.md").read_text("utf-8")
    for value in (*SURVEY_YEAR_BASES, *FLAGS, *NATIONAL_COMPARISONS, "national_comparison"):
        assert f"`{value}`" in readme, value


def test_readme_plain_parquet_snippet_runs(tmp_path: Path) -> None:
    from flows import storage

    publish(tmp_path / "datasets")
    namespace = run_readme_snippet(r"import pandas as pd, polars as pl, duckdb", tmp_path)
    datasets = tmp_path / "datasets"
    assert len(namespace["observations"]) == len(storage.load_table("observations", None, datasets))
    assert namespace["findings"].height == len(storage.load_table("findings", None, datasets))
