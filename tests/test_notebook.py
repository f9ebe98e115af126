"""notebooks/explore.ipynb runs start to end (nbclient, a real Jupyter kernel) against a
release of the shipped pages, and shows what it promises."""

from __future__ import annotations

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
    assert "skolgången" in text  # the question followed over the years
    assert any(
        mime == "image/svg+xml"
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) for mime in output.get("data", {})
    )  # the chart, drawn offline  # fmt: skip
    assert "changes in all; the latest:" in text
