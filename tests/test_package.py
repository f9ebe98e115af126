"""`oj package`: a release as a Frictionless data package that `frictionless validate`
accepts, with a CITATION.cff; and docs/data-dictionary.md, generated from the same schema
declarations, never stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from helpers import ROOT, publish

from flows import storage
from flows.cli import main
from flows.dictionary import DICTIONARY_PATH, data_dictionary
from flows.schemas import TABLES


def test_data_dictionary_is_current() -> None:
    # Regenerate with: .venv/bin/python -m flows.dictionary > docs/data-dictionary.md
    assert (ROOT / DICTIONARY_PATH).read_text("utf-8") == data_dictionary()


def test_data_dictionary_names_every_table_and_column() -> None:
    text = data_dictionary()
    for name, schema in TABLES.items():
        assert f"\n## {name}\n" in text
        for field in schema:
            assert f"| `{field.name}` |" in text, (name, field.name)
    assert "`matched_national_figure`" in text  # allowed values are listed


def test_package_of_a_release_validates(tmp_path: Path, capsys) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    out = tmp_path / "package"
    assert (
        main(["package", "--release", "1", "--out", str(out), "--datasets-dir", str(datasets)]) == 0
    )
    assert "cite as: Öppna jämförelser" in capsys.readouterr().out
    descriptor = json.loads((out / "datapackage.json").read_text("utf-8"))
    assert [r["name"] for r in descriptor["resources"]] == list(TABLES)
    assert descriptor["oppna-jamforelser"]["release"] == 1
    assert descriptor["oppna-jamforelser"]["parser_version"]
    assert descriptor["citation"].startswith("Öppna jämförelser")
    assert any("kalmar.se" in source["path"] for source in descriptor["sources"])
    findings = next(r for r in descriptor["resources"] if r["name"] == "findings")
    percent = next(f for f in findings["schema"]["fields"] if f["name"] == "national_percent")
    assert percent["type"] == "number" and percent["description"]
    frictionless = Path(sys.executable).parent / "frictionless"
    result = subprocess.run(
        [str(frictionless), "validate", "--json", "datapackage.json"],
        cwd=out, capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    errors = [e["message"] for task in report["tasks"] for e in task["errors"]]
    assert report["valid"] is True, errors[:5]
    assert result.returncode == 0
    # Every row of every table is in the package.
    for task in report["tasks"]:
        name = Path(task["place"]).stem
        assert task["stats"].get("rows", 0) == storage.load_arrow(name, 1, datasets).num_rows, name
    cff = (out / "CITATION.cff").read_text("utf-8")
    assert "cff-version: 1.2.0" in cff and 'version: "release 1 (parser' in cff
    # The CSV reads back with pandas: list columns as JSON, nulls as \N.
    observations = pd.read_csv(out / "data" / "observations.csv", na_values=["\\N"],
                               keep_default_na=False)  # fmt: skip
    assert len(observations) == storage.load_arrow("observations", 1, datasets).num_rows
    assert json.loads(observations["finding_ids"].iloc[0])
    # The validator does check the data: a value outside a column's allowed set fails.
    pages = out / "data" / "pages.csv"
    pages.write_text(pages.read_text("utf-8").replace(",parsed,", ",parsed-ish,", 1), "utf-8")
    broken = subprocess.run(
        [str(frictionless), "validate", "--json", "datapackage.json"],
        cwd=out, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert json.loads(broken.stdout)["valid"] is False
