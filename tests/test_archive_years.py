"""Across the archive (issue 9): undated sections take the year of a dated section with
the same question, wording and national figure; national figures are cross-checked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from flows import pipeline, raw_archive, report, storage
from flows.cli import main

URL = "https://kalmar.se/kommun-och-politik/vald-i-nara-relationer.html"
SKOLGANG = (
    "22 procent av kommunerna har en aktuell skriftlig och på ledningsnivå beslutad rutin för "
    "hur handläggare ska säkra skolgången för barn i skyddat boende."
)
FORTBILDNING = "93 procent av kommunerna har genomfört fortbildning om våld i nära relationer."
ANSWER = "Kalmar saknar rutin för hur handläggare ska säkra skolgången för barn i skyddat boende."


def _page(heading: str, *statements: str, footer: str = "") -> bytes:
    body = ["Våld i nära relationer", "", heading, ""]
    for statement in statements:
        body += [f" • {statement}", f"  {ANSWER}", ""]
    return "\n".join([*body, footer]).encode("utf-8")


def _publish(tmp_path: Path, pages: list[tuple[bytes, datetime]]) -> Path:
    raw, datasets = tmp_path / "raw", tmp_path / "datasets"
    records = [
        raw_archive.add_snapshot(raw, body, url=URL, source="wayback", municipality="Kalmar",
                                 captured_at=captured)[0]
        for body, captured in pages
    ]  # fmt: skip
    writer = storage.ReleaseWriter(
        datasets, mode="append", parser_version="test", run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
    )  # fmt: skip
    writer.write(pipeline.parse_snapshots(raw, records))
    pipeline.publish_release(writer, len(records))
    return datasets


def test_an_undated_section_takes_the_year_of_the_same_figure_dated_elsewhere(
    tmp_path: Path,
) -> None:
    datasets = _publish(
        tmp_path,
        [
            # captured in April with no page dates: the page alone cannot tell 2019 from 2020
            (_page("Årets resultat visar att:", SKOLGANG), datetime(2020, 4, 2, tzinfo=UTC)),
            # the next version keeps the same statement, word for word, under 2019 års
            (_page("2019 års resultat visar att:", SKOLGANG), datetime(2021, 8, 1, tzinfo=UTC)),
        ],
    )
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert sorted(findings["survey_year_basis"]) == ["heading", "none"]
    links = storage.load_table("indicator_links", datasets_dir=datasets)
    assert sorted(links["resolved_survey_year_basis"]) == ["heading", "matched_national_figure"]
    assert set(links["resolved_survey_year"]) == {2019}
    observations = storage.load_table("observations", datasets_dir=datasets)
    assert list(observations["survey_year"]) == [2019]
    assert list(observations["survey_year_basis"]) == ["heading"]  # the strongest behind it
    assert list(observations["n_snapshots"]) == [2]


def test_a_match_must_be_unambiguous(tmp_path: Path) -> None:
    # 22 procent is printed for both 2018 and 2019: the undated one stays null
    datasets = _publish(
        tmp_path,
        [
            (_page("Årets resultat visar att:", SKOLGANG), datetime(2020, 4, 2, tzinfo=UTC)),
            (_page("2019 års resultat visar att:", SKOLGANG), datetime(2021, 8, 1, tzinfo=UTC)),
            (_page("2018 års resultat visar att:", SKOLGANG), datetime(2021, 9, 1, tzinfo=UTC)),
        ],
    )
    links = storage.load_table("indicator_links", datasets_dir=datasets)
    assert links["resolved_survey_year"].isna().sum() == 1
    assert "matched_national_figure" not in set(links["resolved_survey_year_basis"])


def test_national_figure_conflicts_are_flagged_and_listed(tmp_path: Path, capsys) -> None:
    datasets = _publish(
        tmp_path,
        [
            (_page("2019 års resultat visar att:", SKOLGANG, FORTBILDNING),
             datetime(2020, 8, 1, tzinfo=UTC)),
            # a later capture prints another figure for the same question and year
            (_page("2019 års resultat visar att:", SKOLGANG.replace("22", "23"), FORTBILDNING),
             datetime(2021, 8, 1, tzinfo=UTC)),
        ],
    )  # fmt: skip
    observations = storage.load_table("observations", datasets_dir=datasets)
    conflicted = observations[observations["national_conflict"]]
    assert len(conflicted) == 1
    assert list(conflicted["national_percent_all_values"].iloc[0]) == [22.0, 23.0]
    counts = report.quality_counts(datasets)
    assert counts["national_conflicts"] == 1
    assert counts["findings_without_year"] == 0
    assert main(["check", "--datasets-dir", str(datasets)]) == 0
    out = capsys.readouterr().out
    assert "1 national-figure conflict," in out
    assert "22 %" in out and "23 %" in out and URL in out


def test_check_without_a_release_says_so(tmp_path: Path, capsys) -> None:
    assert main(["check", "--datasets-dir", str(tmp_path / "none")]) == 2  # a usage error
    assert "no release yet" in capsys.readouterr().err


def test_an_unchanged_bullet_on_later_captures_keeps_its_first_year(tmp_path: Path) -> None:
    # No page dates: each capture is dated by the calendar (September -> that year). The
    # same bullet, unchanged, on the 2021 and 2022 captures was already there in 2020, so
    # it cannot be 2021's or 2022's result.
    # The later captures differ in bytes elsewhere (a trailing blank line: three versions);
    # byte-identical recaptures are one version, parsed once (the next test).
    body = _page("Årets resultat visar att:", SKOLGANG)
    datasets = _publish(
        tmp_path,
        [
            (body, datetime(2020, 9, 1, tzinfo=UTC)),
            (body + b"\n", datetime(2021, 9, 1, tzinfo=UTC)),
            (body + b"\n\n", datetime(2022, 9, 1, tzinfo=UTC)),
        ],
    )
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert sorted(findings["survey_year"]) == [2020, 2021, 2022]  # the page alone
    links = storage.load_table("indicator_links", datasets_dir=datasets)
    assert list(links["resolved_survey_year"]) == [2020, 2020, 2020]
    assert sorted(links["resolved_survey_year_basis"]) == [
        "captured_at",
        "matched_national_figure",
        "matched_national_figure",
    ]
    observations = storage.load_table("observations", datasets_dir=datasets)
    assert list(observations["survey_year"]) == [2020]
    assert list(observations["n_snapshots"]) == [3]


def test_byte_identical_recaptures_keep_the_first_captures_year(tmp_path: Path) -> None:
    # Issue 21 item 2: a version's findings come from its first capture, so its survey
    # year from the calendar is the first capture's (2020), not a later recapture's.
    body = _page("Årets resultat visar att:", SKOLGANG)
    datasets = _publish(
        tmp_path,
        [(body, datetime(year, 9, 1, tzinfo=UTC)) for year in (2020, 2021, 2022)],
    )
    findings = storage.load_table("findings", datasets_dir=datasets)
    assert list(findings["survey_year"]) == [2020]
    assert list(findings["survey_year_basis"]) == ["captured_at"]
    pages = storage.load_table("pages", datasets_dir=datasets)
    assert sorted(pages["parse_status"]) == ["parsed", "recapture", "recapture"]
    observations = storage.load_table("observations", datasets_dir=datasets)
    assert list(observations["survey_year"]) == [2020]
    assert list(observations["n_snapshots"]) == [1]  # one version
