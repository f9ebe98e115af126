"""Change over time on the shipped pages: indicators, observations, changes, overrides,
and snapshot histories built from the shipped pages by editing them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import RAW_DIR, ROOT, edited_history, publish, seed_records

from flows import history, report, storage
from parsers.linking import FUZZY_THRESHOLD, normalize_statement, score

OVERRIDES = ROOT / "indicator_overrides.toml"
VALD = "Våld i nära relationer"
SEEDS = seed_records()


def _published(tmp_path: Path, overrides: Path | None = OVERRIDES) -> Path:
    datasets = tmp_path / "datasets"
    publish(datasets, overrides=history.load_overrides(overrides))
    return datasets


def _linked(datasets: Path, release: int | None = None) -> pd.DataFrame:
    findings = storage.load_table("findings", release, datasets)
    links = storage.load_table("indicator_links", release, datasets)
    return findings.merge(links.drop(columns=["area"]), on="finding_id")


def _indicator(linked: pd.DataFrame, area: str, *words: str) -> set[str]:
    rows = linked[(linked["area"] == area) & linked["national_statement"].map(
        lambda s: all(w in s for w in words))]  # fmt: skip
    return set(rows["indicator_id"])


def test_skolgang_is_one_indicator_with_three_observations(tmp_path: Path) -> None:
    datasets = _published(tmp_path)
    linked = _linked(datasets)
    (indicator_id,) = _indicator(linked, VALD, "skolgången")
    observations = storage.load_table("observations", datasets_dir=datasets)
    mine = observations[observations["indicator_id"] == indicator_id].sort_values("survey_year")
    assert list(mine["survey_year"]) == [2018, 2019, 2020]
    assert list(mine["national_percent"]) == [15.0, 22.0, 21.0]
    assert list(mine["local_status"]) == ["no", "no", "no"]
    assert not mine["conflict"].any()
    links = linked[linked["indicator_id"] == indicator_id].set_index("survey_year")
    # The oldest wording (2018) founds the indicator; 2019 and 2020 normalise to one text,
    # which adds "och på ledningsnivå beslutad" to it: a fuzzy link, with its score.
    assert links.loc[2018, "link_method"] == "exact"
    assert links.loc[2019, "link_method"] == links.loc[2020, "link_method"] == "fuzzy"
    assert FUZZY_THRESHOLD <= links.loc[2019, "link_score"] == links.loc[2020, "link_score"] < 100
    indicator = storage.load_table("indicators", datasets_dir=datasets).set_index("indicator_id")
    assert indicator.loc[
        indicator_id, ["first_survey_year", "last_survey_year", "n_observations", "n_wordings"]
    ].tolist() == [2018, 2020, 3, 3]


def test_links_checked_by_hand(tmp_path: Path) -> None:
    linked = _linked(_published(tmp_path))
    same = [
        (VALD, ("systematiskt följt upp resultaten",)),  # 2018 and 2019 rewordings
        (VALD, ("genomfört fortbildning",)),  # 2018 and 2019, "Fler" / "De flesta"
        ("Ekonomiskt bistånd", ("systematisk uppföljning",)),  # 22 % 2018 -> 15 % 2019
        ("Psykisk funktionsnedsättning - socialpsykiatri", ("uppsökande verksamhet",)),  # override
        ("Barn- och ungdomsvård", ("satsat på fortbildning om våld",)),  # override, 2020/2021
    ]
    for area, words in same:
        assert len(_indicator(linked, area, *words)) == 1, words
        assert len(linked[linked["indicator_id"].isin(_indicator(linked, area, *words))]) == 2
    # Must NOT be merged: different questions in the same frame of words...
    assert _indicator(linked, VALD, "gå tillväga") != _indicator(linked, VALD, "skolgången")
    assert _indicator(linked, VALD, "röja skyddade") != _indicator(linked, VALD, "skolgången")
    assert _indicator(linked, VALD, "myndighetsutövningen (12") != _indicator(
        linked, VALD, "systematiskt följt upp"
    )
    # ...two bullets of one block, however alike...
    psyk = "Psykisk funktionsnedsättning - socialpsykiatri"
    assert _indicator(linked, psyk, "samordning mellan socialpsykiatrin") != _indicator(
        linked, psyk, "samordnad individuell plan"
    )
    # ...and the same words in another area are another area's indicator.
    assert _indicator(linked, "Barn- och ungdomsvård", "skolgången") != _indicator(
        linked, VALD, "skolgången"
    )
    # Every within-area pair the matcher merged scores above the threshold; the closest
    # pair of different questions stays well below it.
    frame = "har en aktuell skriftlig och på ledningsnivå beslutad rutin för hur handläggare"
    a = normalize_statement(f"Allt fler kommuner, 63 procent, {frame} inom verksamhetsområdet "
                            "våld i nära relationer ska gå tillväga vid indikation på att en "
                            "vuxen person utsatts för våld av närstående.")  # fmt: skip
    b = normalize_statement(f"22 procent av kommunerna {frame} ska säkra skolgången för barn i "
                            "skyddat boende.")  # fmt: skip
    assert score(a, b) < FUZZY_THRESHOLD - 5


def test_overrides_win_over_the_matcher(tmp_path: Path) -> None:
    psyk = "Psykisk funktionsnedsättning - socialpsykiatri"
    without = _linked(_published(tmp_path / "plain", overrides=None))
    assert len(_indicator(without, psyk, "uppsökande verksamhet")) == 2
    split = tmp_path / "split.toml"
    split.write_text(
        '[[different]]\narea = "Våld i nära relationer"\nstatements = [\n'
        '  "22 procent av kommunerna har en aktuell skriftlig och på ledningsnivå beslutad rutin '
        'för hur handläggare ska säkra skolgången för barn i skyddat boende.",\n'
        '  "15 procent av Sveriges kommuner har en aktuell skriftlig rutin för hur handläggare '
        'ska säkra skolgången för barn i skyddat boende.",\n]\n', "utf-8")  # fmt: skip
    linked = _linked(_published(tmp_path / "split", overrides=split))
    assert len(_indicator(linked, VALD, "skolgången")) == 2
    with_file = _linked(_published(tmp_path / "joined"))
    joined = with_file[with_file["national_statement"].str.contains("uppsökande verksamhet")
                       & (with_file["area"] == psyk)]  # fmt: skip
    assert sorted(joined["link_method"]) == ["exact", "override"]


def test_barn_och_ungdomsvard_2020_and_2023_give_changes(tmp_path: Path) -> None:
    datasets = _published(tmp_path)
    changes = storage.load_table("changes", datasets_dir=datasets)
    page = changes[changes["url"].str.endswith("barn--och-ungdomsvard.html")]
    assert len(page) > 0
    assert set(page["change_kind"]) == {"added", "removed"}  # 2020 sections gone, 2021/22 new
    assert page["from_seen"].astype(str).unique().tolist() == ["2020-07-02"]
    assert page["to_seen"].astype(str).unique().tolist() == ["2023-01-09"]
    text = report.changes_report(datasets, area="barn- och")
    assert text.startswith("2023-01-09  Barn- och ungdomsvård · Kalmar  (since 2020-07-02)")
    assert report.changes_report(datasets, municipality="Växjö") == "no changes match\n"


def test_every_change_kind_on_anedited_history(tmp_path: Path, monkeypatch) -> None:
    raw, records = edited_history(tmp_path)
    monkeypatch.setattr("helpers.RAW_DIR", raw)
    datasets = tmp_path / "datasets"
    publish(datasets, records)
    changes = storage.load_table("changes", datasets_dir=datasets)
    first, second = (changes[changes["to_snapshot_id"] == r.record_id] for r in records[1:])
    # Capture 2: only the answer changed, and its status flipped.
    (flip,) = first.itertuples()
    assert (flip.change_kind, list(flip.columns_changed)) == (
        "edited",
        ["local_answer", "local_status"],
    )
    assert (flip.local_status_before, flip.local_status_after, flip.local_status_flip) == (
        "no",
        "yes",
        True,
    )
    assert json.loads(flip.before)["local_status"] == "no"
    # Capture 3: a national figure changed for the same year, a bullet dropped, a reworded
    # statement stays the same indicator (edited, not removed + added).
    kinds = sorted(second["change_kind"])
    assert kinds == ["edited", "edited", "removed"]
    figure = second[second["national_changed"]]
    assert figure[["national_percent_before", "national_percent_after"]].values.tolist() == [
        [63.0, 64.0]
    ]
    reworded = second[(second["change_kind"] == "edited") & ~second["national_changed"]]
    assert list(reworded["columns_changed"].iloc[0]) == ["national_statement"]
    removed = second[second["change_kind"] == "removed"]
    assert removed["survey_year"].tolist() == [2019]
    # Observations keep both answers the snapshots gave, flagged as a conflict.
    observations = storage.load_table("observations", datasets_dir=datasets)
    conflicts = observations[observations["conflict"]]
    assert len(conflicts) == 2
    figure = conflicts[
        conflicts["conflict_columns"].map(list).map(lambda c: c == ["national_percent"])
    ]
    assert list(figure["national_percent_values"].iloc[0]) == [63.0, 64.0]
    skolgang = conflicts[conflicts["local_status_values"].map(lambda v: list(v) == ["no", "yes"])]
    assert len(skolgang) == 1 and skolgang["survey_year"].iloc[0] == 2020
    assert list(skolgang["conflict_columns"].iloc[0]) == ["local_status", "local_answer"]
    assert skolgang["local_status"].iloc[0] == "yes"  # the latest snapshot's value
    assert skolgang["n_snapshots"].iloc[0] == 3
    assert str(skolgang["first_seen"].iloc[0]) == "2020-07-01"


def test_indicator_ids_are_stable_across_releases(tmp_path: Path, monkeypatch) -> None:
    raw, records = edited_history(tmp_path)
    monkeypatch.setattr("helpers.RAW_DIR", raw)
    datasets = tmp_path / "datasets"
    publish(datasets, records[2:])
    before = storage.load_table("indicators", datasets_dir=datasets)
    publish(datasets, records[:2])  # older captures arrive later (a Wayback backfill)
    after = storage.load_table("indicators", datasets_dir=datasets)
    assert set(before["indicator_id"]) <= set(after["indicator_id"])
    diff = report.diff_releases(datasets, 1, 2).set_index("table")
    assert diff.loc["pages", "added"] == 2 and diff.loc["pages", "removed"] == 0
    assert diff.loc["findings", "added"] == 22
    assert diff.loc["runs", ["rows_a", "rows_b", "added"]].tolist() == [1, 2, 1]


def test_overrides_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "o.toml"
    bad.write_text('[[same]]\narea = "X"\nstatements = ["only one"]\n', "utf-8")
    with pytest.raises(history.OverridesError, match=r"o\.toml: \[\[same\]\] #1"):
        history.load_overrides(bad)


def test_changes_and_diff_commands(tmp_path: Path, capsys) -> None:
    from flows.cli import main

    datasets = _published(tmp_path)
    publish(datasets, overrides=history.load_overrides(OVERRIDES))  # same pages again
    assert main(["changes", "--datasets-dir", str(datasets), "--since", "2023-01-01"]) == 0
    out = capsys.readouterr().out
    assert "+ added   2021  24 procent av kommunerna" in out and "- removed 2020" in out
    assert main(["changes", "--datasets-dir", str(datasets), "--since", "2024-01-01"]) == 0
    assert capsys.readouterr().out.strip() == "no changes match"
    assert main(["diff", "1", "2", "--datasets-dir", str(datasets)]) == 0
    out = capsys.readouterr().out
    assert "A = release 1, B = release 2" in out
    assert main(["diff", "1", "7", "--datasets-dir", str(datasets)]) == 2  # a usage error
    assert "there is no release 7" in capsys.readouterr().err


def test_a_changed_override_file_relinks_into_a_new_release(tmp_path: Path) -> None:
    from flows import pipeline

    datasets = _published(tmp_path, overrides=None)
    unchanged = pipeline.plan_run(RAW_DIR, datasets, overrides_sha256=None)
    assert (unchanged.mode, unchanged.has_work) == ("append", False)
    sha = history.load_overrides(OVERRIDES).sha256
    relink = pipeline.plan_run(RAW_DIR, datasets, overrides_sha256=sha)
    assert (relink.mode, relink.has_work, relink.records) == ("relink", True, [])
    publish(datasets, [], mode="relink", overrides=history.load_overrides(OVERRIDES))
    runs = storage.releases(datasets)
    assert runs["n_findings"].tolist() == [40, 40] and runs["mode"].tolist() == ["append", "relink"]
    links = storage.load_table("indicator_links", datasets_dir=datasets)
    assert (links["link_method"] == "override").sum() == 2


def test_changes_report_names_each_findings_own_text_before_and_after(
    tmp_path: Path, monkeypatch
) -> None:
    raw, records = edited_history(tmp_path)
    monkeypatch.setattr("helpers.RAW_DIR", raw)
    datasets = tmp_path / "datasets"
    publish(datasets, records)
    text = report.changes_report(datasets, width=100)
    lines = text.splitlines()
    # The removed 2019 bullet is shown with its own statement, not its question's latest.
    (removed,) = [line for line in lines if line.startswith("  - removed 2019")]
    assert "De flesta kommuner uppger att de under det senaste året har genomfört" in removed
    # An edited answer: before and after in full (wrapped, never cut), indented under it.
    at = next(i for i, line in enumerate(lines) if line.strip() == "local_answer:")
    assert lines[at].startswith("      local_answer:")
    detail = " ".join(line.strip() for line in lines[at + 1 : at + 6])
    assert "before: I Kalmar finns inte en rutin för hur handläggare ska säkra skolgången" in detail
    assert "after:  I Kalmar finns en rutin för hur handläggare ska säkra skolgången" in detail
    assert "      local_status: no → yes" in lines
    assert "      national_percent: 63 → 64" in lines
    # A reworded statement: the old and the new wording, each whole.
    flat = " ".join(text.split())
    assert (
        "before: 8 procent av kommunerna uppger att de inom området våld i nära relationer "
        "systematiskt följt upp resultaten av insatser till enskilda vuxna" in flat
    )
    assert (
        "after: 8 procent av kommunerna har inom området våld i nära relationer "
        "systematiskt följt upp resultaten av insatser till enskilda vuxna" in flat
    )
