"""End to end (issue 22): result tables and county cards added with `oj add` and run with
`oj run` (real processes, against the tests' Prefect server) arrive in `findings` and
`observations` with entity, measure and the national figure; a news post gives none; the
[directions] of an overrides file judge higher/lower as better/worse in observations.
Fixtures: tests/fixtures/layouts/ (invented pages and figures)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_oj

from flows import storage

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"
ADDED = (
    ("table_eldercare.html", "https://www.bjorkvala.se/oj-aldreomsorg", "Björkvala"),
    ("table_county.txt", "https://www.tallmora.se/socialtjanst-resultat", "Tallmora"),
    ("card_county.html", "https://www.granasen-lan.se/oppna-jamforelser", None),
    ("news_rank.txt", "https://www.bjorkvala.se/nyheter/plats-23", "Björkvala"),
)
LAKEMEDEL = "Andelen personer 75 och äldre med olämpliga läkemedel på vård- och omsorgsboende"


def test_tables_and_cards_reach_findings_and_observations(
    prefect_server: str, tmp_path: Path
) -> None:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    for name, url, municipality in ADDED:
        extra = ["--municipality", municipality] if municipality else []
        added = run_oj("add", FIXTURES / name, "--url", url, "--source", "live",
                       "--captured-at", "2023-06-01T10:00:00+00:00", "--raw-dir", raw, *extra)  # fmt: skip
        assert added.returncode == 0, added.stderr
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(f'[directions]\n"{LAKEMEDEL}" = "lower_is_better"\n', "utf-8")
    ran = run_oj("run", "--raw-dir", raw, "--datasets-dir", datasets, "--overrides", overrides,
                 api_url=prefect_server)  # fmt: skip
    assert ran.returncode == 0, ran.stderr

    findings = storage.load_table("findings", datasets_dir=datasets)
    keyed = {
        (row.url, row.national_statement, row.survey_year): row
        for row in findings.itertuples(index=False)
    }
    nojda = keyed[
        (ADDED[0][1], "Andel som sammantaget är mycket nöjda med hemtjänsten", 2022)
    ]
    assert (nojda.entity_kind, nojda.entity, nojda.municipality) == (
        "municipality", "Björkvala", "Björkvala"
    )  # fmt: skip
    assert (nojda.local_value, nojda.national_value, nojda.national_measure) == (
        84.0, 81.0, "share_of_respondents"
    )  # fmt: skip
    nki = keyed[(ADDED[0][1], "Nöjd kund-index (NKI) hemtjänst", 2022)]
    assert (nki.local_value, nki.national_value, nki.national_measure, nki.comparison) == (
        68.0, 72.0, "index", "lower"
    )  # fmt: skip
    assert nki.national_percent is None or nki.national_percent != nki.national_percent
    rutin = keyed[
        (ADDED[1][1], "andel kommuner som har en aktuell rutin för orosanmälningar", 2022)
    ]
    assert (rutin.entity, rutin.local_value, rutin.national_value, rutin.national_measure) == (
        "Tallmora", 100.0, 88.0, "share_of_municipalities"
    )  # fmt: skip
    county = findings[findings["url"] == ADDED[2][1]]
    assert sorted(county["local_value"]) == [45.5, 70.0, 90.0]
    assert set(county["entity_kind"]) == {"county"}
    assert set(county["entity"]) == {"Granåsens län"}
    assert county["municipality"].isna().all()
    # the news post: no findings at all
    assert (findings["url"] == ADDED[3][1]).sum() == 0

    observations = storage.load_table("observations", datasets_dir=datasets)
    lakemedel = observations[
        (observations["entity"] == "Björkvala") & (observations["local_value"] == 7.3)
    ]
    assert len(lakemedel) == 1
    row = lakemedel.iloc[0]
    assert (row["survey_year"], row["national_value"], row["comparison"]) == (2022, 6.8, "higher")
    assert row["national_comparison"] == "worse"  # declared lower_is_better in [directions]
    cards = observations[observations["entity_kind"] == "county"]
    assert set(cards["entity"]) == {"Granåsens län"} and len(cards) == 3
    assert cards["municipality"].isna().all()


def test_oj_parse_prints_a_tables_rows() -> None:
    parsed = run_oj("parse", FIXTURES / "table_eldercare.txt", "--municipality", "Björkvala")
    assert parsed.returncode == 0, parsed.stderr
    records = [json.loads(line) for line in parsed.stdout.splitlines() if line.strip()]
    rows = {(r["national_statement"][:20], r["survey_year"]): r for r in records}
    nojda = rows[("Andel som sammantage", 2022)]
    assert (nojda["local_value"], nojda["national_value"], nojda["national_measure"]) == (
        84.0, 81.0, "share_of_respondents"
    )  # fmt: skip
    assert (nojda["entity_kind"], nojda["entity"]) == ("municipality", "Björkvala")
    assert rows[("Nöjd kund-index (NKI", 2021)]["local_value"] == 70.0


def test_directions_in_the_overrides_file_are_read_and_checked(tmp_path: Path) -> None:
    from flows.history import OverridesError, load_overrides

    good = tmp_path / "good.toml"
    good.write_text('[directions]\n"Andel som är  nöjda." = "higher_is_better"\n', "utf-8")
    assert load_overrides(good).directions == {"andel som är nöjda": "higher_is_better"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[directions]\n"Andel som är nöjda" = "better"\n', "utf-8")
    try:
        load_overrides(bad)
    except OverridesError as error:
        message = str(error)
    else:
        raise AssertionError("a direction that is neither higher_ nor lower_is_better loaded")
    assert str(bad) in message and "\n" not in message and "higher_is_better" in message
