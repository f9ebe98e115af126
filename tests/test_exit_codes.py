"""One exit-code table (flows/errors.py, printed by `oj --help`), true for every command,
checked through the real `oj` in fresh processes; and the small wording of its messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import HTML_DIR, RAW_DIR, publish, run_oj, seed_records, write_warc

from flows import raw_archive
from flows.errors import EXIT_CODES, plural


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_help_prints_the_exit_code_table() -> None:
    result = run_oj("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in text


def test_a_datasets_dir_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    # `oj versions --datasets-dir /typo` said "no release yet" and exited 0.
    typo = tmp_path / "datsets"
    result = run_oj("versions", "--datasets-dir", typo)
    assert (result.returncode, _one_line(result.stderr)) == (
        2, f"oj versions: datasets dir {typo} does not exist (pass --datasets-dir)")  # fmt: skip
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # a folder with no release yet is no error
    result = run_oj("versions", "--datasets-dir", empty)
    assert (result.returncode, result.stdout) == (0, f"{empty}: no release yet (run `oj run`)\n")


@pytest.fixture(scope="module")
def one_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datasets = tmp_path_factory.mktemp("store") / "datasets"
    publish(datasets, list(seed_records().values())[:1])
    return datasets


@pytest.mark.parametrize(
    "command",
    [
        ["export", "findings", "--release", "99", "--out", "{tmp}/x.parquet"],
        ["check", "--release", "99"],
        ["report", "--release", "99", "--out", "{tmp}/site"],
        ["package", "--release", "99", "--out", "{tmp}/package"],
        ["changes", "--release", "99"],
        ["diff", "1", "99"],
    ],
    ids=lambda command: command[0],
)
def test_a_missing_release_is_a_usage_error(
    one_release: Path, tmp_path: Path, command: list[str]
) -> None:
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    result = run_oj(*args, "--datasets-dir", one_release)
    assert (result.returncode, _one_line(result.stderr)) == (
        2, f"oj {command[0]}: {one_release}: there is no release 99 (releases: 1)")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_file_named_on_the_command_line_that_does_not_exist_is_a_usage_error(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "sida.html"
    good = HTML_DIR / "000_li_br.html"
    raw = tmp_path / "raw"
    added = run_oj("add", missing, good, "--url", "https://kalmar.se/sida.html",
                   "--source", "seed", "--raw-dir", raw)  # fmt: skip
    assert added.returncode == 2
    assert _one_line(added.stderr) == f"oj add: {missing}: No such file or directory"
    assert added.stdout.startswith(f"added: {good}")  # the others are still added
    parsed = run_oj("parse", missing, good)
    assert parsed.returncode == 2
    assert _one_line(parsed.stderr) == f"oj parse: {missing}: No such file or directory"
    assert parsed.stdout  # the good file still parsed
    warc = run_oj("import-warc", tmp_path / "crawl.warc.gz", "--raw-dir", raw)
    assert warc.returncode == 2
    assert _one_line(warc.stderr) == (
        f"oj import-warc: {tmp_path / 'crawl.warc.gz'}: No such file or directory")  # fmt: skip


def test_counts_of_one_are_singular(one_release: Path, tmp_path: Path) -> None:
    assert [plural(0, "row"), plural(1, "row"), plural(2, "row")] == ["0 rows", "1 row", "2 rows"]
    exported = run_oj("export", "runs", "--out", tmp_path / "runs.parquet",
                      "--datasets-dir", one_release)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert ": 1 row of `runs` as of release 1" in exported.stdout
    packaged = run_oj("package", "--out", tmp_path / "package", "--datasets-dir", one_release)
    assert packaged.returncode == 0, packaged.stderr
    descriptor = json.loads((tmp_path / "package" / "datapackage.json").read_text("utf-8"))
    (runs,) = [r for r in descriptor["resources"] if r["name"] == "runs"]
    assert " 1 row." in runs["description"]
    # one object, one record, one release: and then one problem
    raw = tmp_path / "raw"
    record = next(iter(seed_records().values()))
    raw_archive.add_snapshot(
        raw, raw_archive.read_object(RAW_DIR, record.sha256), url=record.url, source="seed"
    )
    datasets = tmp_path / "datasets"
    shutil.copytree(one_release, datasets)
    verified = run_oj("verify", "--raw-dir", raw, "--datasets-dir", datasets)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("1 object, 1 record, 1 release checked in ")
    assert verified.stdout.endswith(": all hold\n")
    (object_file,) = [path for path in (raw / "objects").rglob("*") if path.is_file()]
    object_file.chmod(0o644)
    object_file.write_bytes(b"changed")
    broken = run_oj("verify", "--raw-dir", raw, "--datasets-dir", datasets)
    assert broken.returncode == 1
    assert broken.stdout.endswith(": 1 problem\n"), broken.stdout


def test_no_changes_match_ends_its_line(one_release: Path) -> None:
    result = run_oj("changes", "--since", "2100-01-01", "--datasets-dir", one_release)
    assert (result.returncode, result.stdout) == (0, "no changes match\n")


def test_import_warc_finds_sources_beside_the_raw_dir_as_run_does(tmp_path: Path) -> None:
    # `import-warc --sources` defaulted to ./sources.toml, `run` to the one beside the raw
    # dir: from another folder, import-warc added every page of a crawl.
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    listed, other = "https://kalmar.se/listed.html", "https://kalmar.se/other.html"
    (project / "sources.toml").write_text(
        f'[[page]]\nmunicipality = "Kalmar"\nmunicipality_code = "0880"\narea = "Sida"\n'
        f'url = "{listed}"\n',
        "utf-8",
    )
    page = (HTML_DIR / "000_li_br.html").read_bytes()
    crawl = write_warc(tmp_path / "crawl.warc.gz", {listed: page, other: page + b" "})
    result = run_oj("import-warc", crawl, "--raw-dir", project / "raw", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{crawl}: 1 HTML response added, 0 failed\n"
    assert [r.url for r in raw_archive.iter_records(project / "raw")] == [listed]


def test_a_bucket_without_credentials_is_one_line_and_a_configuration_error() -> None:
    # With no keys, delta-rs asks the cloud metadata service (IMDS) and logged three WARN
    # lines ("failed to load region from IMDS ...") before `oj`'s own line, which called
    # it an "unexpected error" (exit 1). A metadata endpoint where nothing listens makes
    # the lookup fail at once, offline.
    import os
    import subprocess

    from helpers import OJ, ROOT

    from flows.server import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    result = subprocess.run(
        [*OJ, "versions", "--datasets-dir", "s3://oj-no-such-bucket/datasets"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = _one_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert line.startswith("oj versions: ") and "unexpected" not in line
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
