"""The README and the guides in docs/ say what is true: their snippets and commands run as
written, their links resolve, and their tables match the code."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from helpers import ROOT, golden, publish, run_oj, seed_records

#: Every page a newcomer is pointed to; the data dictionary is generated and checked apart.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def run_snippet(document: str, opening: str, cwd: Path, namespace: dict | None = None) -> dict:
    """Run the ```python block of `document` (a path under the repository) that starts with
    `opening` (a regex) in `cwd`, in `namespace` (a fresh one by default)."""
    text = (ROOT / document).read_text("utf-8")
    found = re.search(rf"```python\n({opening}.*?)```", text, re.DOTALL)
    assert found, f"{document}: no python block starting with {opening!r}"
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        namespace = {} if namespace is None else namespace
        exec(compile(found.group(1), document, "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def _overrides():
    from flows import history

    return history.load_overrides(ROOT / "indicator_overrides.toml")


def test_readme_first_commands_are_the_contract() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL).group(1).splitlines()
    assert first_block[0].endswith("oj run")
    assert first_block[1] == ".venv/bin/pytest"
    assert ".venv/bin/pytest" in (ROOT / ".ci" / "run").read_text("utf-8")


def test_readme_stays_a_five_minute_read() -> None:
    # Issue 19: the README had grown to 668 lines; the guides live in docs/.
    assert len((ROOT / "README.md").read_text("utf-8").splitlines()) <= 160


def test_readme_analyst_quick_start_loads_and_plots(tmp_path: Path) -> None:
    publish(tmp_path / "datasets", overrides=_overrides())
    namespace = run_snippet("README.md", r"import pandas as pd\n\nobservations", tmp_path)
    assert len(namespace["findings"]) == sum(len(golden(seed)) for seed in seed_records())
    run_snippet("README.md", r"import altair as alt", tmp_path, namespace)
    # The plotted question has several survey years, one national figure per year.
    series = namespace["series"]
    assert series["survey_year"].nunique() == len(series) >= 2
    assert (tmp_path / "question.svg").read_text("utf-8").lstrip().startswith("<svg")


def test_using_the_dataset_snippets_run(tmp_path: Path) -> None:
    from flows import storage

    publish(tmp_path / "datasets")
    namespace = run_snippet("docs/using-the-dataset.md", r"# pandas", tmp_path)
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

    namespace = run_snippet(
        "docs/using-the-dataset.md", r"import pandas as pd, polars as pl, duckdb", tmp_path
    )
    datasets = tmp_path / "datasets"
    assert len(namespace["observations"]) == len(storage.load_table("observations", None, datasets))
    assert namespace["findings"].height == len(storage.load_table("findings", None, datasets))


def test_every_capture_join_gives_recaptures_their_versions_findings(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from flows import raw_archive, storage

    seeds = list(seed_records().values())
    first = len(golden(next(iter(seed_records()))))
    # seed 0 captured again, byte for byte: one more capture, no more findings
    again = raw_archive.add_snapshot(
        tmp_path / "raw", raw_archive.read_object(ROOT / "raw", seeds[0].sha256),
        url=seeds[0].url, source="wayback", captured_at=datetime(2030, 1, 1, tzinfo=UTC),
    )[0]  # fmt: skip
    publish(tmp_path / "datasets", [*seeds, again])
    namespace = run_snippet("docs/using-the-dataset.md", r"# every capture's findings", tmp_path)
    by_capture = namespace["by_capture"]
    findings = storage.load_table("findings", None, tmp_path / "datasets")
    assert len(findings) == sum(len(golden(seed)) for seed in seed_records())
    assert len(by_capture) == len(findings) + first
    assert (by_capture.snapshot_id == again.record_id).sum() == first


def test_researcher_snippet_runs(tmp_path: Path) -> None:
    publish(tmp_path / "datasets", overrides=_overrides())
    namespace = run_snippet(
        "docs/researchers.md", r"from flows.storage import load_table\n\nindicators", tmp_path
    )
    assert sorted(namespace["over_time"]["survey_year"].tolist()) == [2018, 2019, 2020]


def test_parsing_guide_documents_every_basis_flag_and_comparison() -> None:
    # The finding record's fixed vocabularies live in parsers/records.py (and, through
    # flows/schemas.py, in the Delta field metadata); the guide must name every value.
    from parsers import FLAGS, NATIONAL_COMPARISONS, SURVEY_YEAR_BASES

    guide = (ROOT / "docs" / "parsing.md").read_text("utf-8")
    for value in (*SURVEY_YEAR_BASES, *FLAGS, *NATIONAL_COMPARISONS, "national_comparison"):
        assert f"`{value}`" in guide, value


def test_exit_code_table_is_the_one_in_the_code() -> None:
    from flows.errors import EXIT_CODES

    readme = (ROOT / "README.md").read_text("utf-8")
    documented = {
        int(code): meaning.replace("`", "")
        for code, meaning in re.findall(r"^\| (\d+) \| (.*) \|$", readme, re.MULTILINE)
    }
    assert documented == EXIT_CODES
    for document in DOCS[1:]:  # one table: the guides link to it
        assert not re.search(r"^\| 75 \|", document.read_text("utf-8"), re.MULTILINE), document


def test_relative_links_resolve() -> None:
    for document in DOCS:
        text = document.read_text("utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):  # http(s), mailto
                continue
            assert (document.parent / target).exists(), f"{document.name}: {target}"


def _oj_command_lines() -> list[tuple[str, list[str]]]:
    """Every `oj ...` command shown in a ```bash block of the README and the guides, as
    (document, argv after `oj`); continuation lines joined, comments and pipes dropped."""
    found = []
    for document in DOCS:
        text = document.read_text("utf-8")
        for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                # the command alone: no comment, pipe, redirection or background `&`
                line = re.split(r"\s#\s|\s\|\s|\s\d?>|\s&(\s|$)", line)[0].strip()
                if not re.search(r"(^|[\s/])oj(\s|$)", line):
                    continue  # other tools' commands (prefect, dask, aws) are not parsed here
                words = shlex.split(line)
                while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value oj ...
                    words.pop(0)
                if words and re.search(r"(^|/)oj$", words[0]):
                    found.append((document.name, words[1:]))
    return found


def test_every_documented_command_is_valid() -> None:
    from flows.cli import build_parser

    commands = _oj_command_lines()
    assert len(commands) >= 15
    for document, argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{document}: `oj {' '.join(argv)}` is not a valid command")


def test_documented_read_only_commands_run(tmp_path: Path) -> None:
    """The documented commands that only read, run as written against a published
    release (those naming files the reader would bring, like saved-page.html, aside)."""
    publish(tmp_path / "datasets", overrides=_overrides())
    for name in ("raw", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    ran = 0
    for document, argv in _oj_command_lines():
        if argv[0] not in ("parse", "check", "versions", "changes"):
            continue
        if any("://" in arg for arg in argv):  # a bucket (docs/team.md): tests/test_object_store.py
            continue
        if argv[0] == "parse" and not all((tmp_path / a).exists() for a in argv[1:] if "/" in a):
            continue
        result = run_oj(*argv, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, f"{document}: oj {' '.join(argv)}: {result.stderr}"
        assert result.stdout.strip(), f"{document}: oj {' '.join(argv)} printed nothing"
        ran += 1
    assert ran >= 5
