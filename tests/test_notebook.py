"""notebooks/explore.ipynb runs start to end (nbclient, a real Jupyter kernel) against a
release of the shipped pages, and shows what it promises."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from helpers import ROOT, publish
from nbclient import NotebookClient

from flows.storage import load_table


def test_explore_notebook_runs_on_the_shipped_pages(tmp_path: Path, monkeypatch) -> None:
    datasets = tmp_path / "datasets"
    publish(datasets)
    monkeypatch.setenv("OJ_DATASETS", str(datasets))
    notebook = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=180, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )  # fmt: skip
    assert "release 1, parser" in text
    n = len(load_table("observations", datasets_dir=datasets))
    assert f"{n} observations; {n} in latest/observations.parquet" in text  # same rows
    # The question followed over the years is one with a history: the most survey years
    # with a national figure (it once picked a question of a single year: one point).
    observations = load_table("observations", datasets_dir=datasets).dropna(
        subset=["survey_year", "national_percent"]
    )
    most = observations.groupby("indicator_id")["survey_year"].nunique().max()
    found = re.search(r"(\d+) survey years with a national figure: ([\d, ]+)", text)
    assert found, text
    years = found.group(2).split(", ")
    assert int(found.group(1)) == len(years) == most >= 2
    svgs = [
        output["data"]["image/svg+xml"]
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "image/svg+xml" in output.get("data", {})
    ]  # the chart, drawn offline  # fmt: skip
    assert len(svgs) == 1
    svg = "".join(svgs[0])
    # the national line: one point per survey year (vl-convert labels each mark's role)
    assert svg.count('aria-roledescription="point"') >= len(years) >= 2
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert set(years) <= set(labels), (years, labels)
    assert "changes in all; the latest:" in text
