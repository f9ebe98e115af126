"""The `oj` command line as a user meets it: help for every option, `--version`, and
every table exportable as of a release."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import ROOT, publish

from flows import storage
from flows.cli import build_parser, main
from flows.schemas import TABLES
from parsers import PARSER_VERSION


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"oj": parser, **subparsers.choices}


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{name} {action.dest}"
        for name, command in _commands().items()
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_version_names_oj_and_its_parser() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--version"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.startswith("oj ")
    assert f"(parser {PARSER_VERSION})" in result.stdout


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_exports_as_of_a_release(tmp_path: Path, table: str, capsys) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    out = tmp_path / f"{table}.parquet"
    assert main(["export", table, "--out", str(out), "--datasets-dir", str(datasets)]) == 0
    assert f"of `{table}` as of release 1" in capsys.readouterr().out
    exported = pq.read_table(out)
    assert exported.schema.metadata[b"oppna_jamforelser.release"] == b"1"
    expected = storage.load_arrow(table, 1, datasets)
    assert exported.num_rows == expected.num_rows
    assert exported.num_rows > 0 or table == "rejects"  # the shipped pages parse whole
    assert exported.to_pylist() == expected.to_pylist()
