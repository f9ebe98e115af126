"""Change alerts through Apprise, received by a real local HTTP server (pytest-httpserver):
one message per release that changed something, nothing for a release that did not,
and a failing notification never fails the release."""

from __future__ import annotations

import json
from pathlib import Path

import helpers
import pytest
from helpers import edited_history, publish
from pytest_httpserver import HTTPServer

from flows import notify
from flows.server import free_port


def _received(server: HTTPServer) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in server.log]


@pytest.fixture
def history(tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    raw, records = edited_history(tmp_path)
    monkeypatch.setattr("helpers.RAW_DIR", raw)
    return tmp_path / "datasets", records


def test_a_release_with_changes_sends_one_readable_message(history, httpserver: HTTPServer) -> None:
    datasets, records = history
    publish(datasets, records[:1])
    publish(datasets, records[1:3])  # an answer flipped, a figure corrected, a bullet dropped
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    url = f"json://localhost:{httpserver.port}/hook"
    assert notify.notify_release(datasets, 2, [url]) == {"sent": 1, "failures": []}
    (message,) = _received(httpserver)
    assert message["title"] == "oppna-jamforelser release 2: 4 changes on 1 page (2 new captures)"
    body = message["message"]
    assert "- Kalmar · Våld i nära relationer (2020-07-03): 2 edited, 1 removed" in body
    # The flip names its question by its subject (the skolgång routine), not by the share
    # clause every question opens with ("Det är fortfarande relativt få kommuner, ...").
    flip = body.split("Answer flips:\n", 1)[1].splitlines()[0]
    assert flip.startswith("- Kalmar: ") and flip.endswith(": no → yes")
    assert "rutin för hur handläggare ska säkra skolgången för barn i skyddat boende" in flip
    assert "kommuner" not in flip and "procent" not in flip
    assert all(len(line) <= notify.LINE_WIDTH for line in body.splitlines())
    assert "National figures changed:\n- " in body and "63 % → 64 %" in body
    assert body.endswith("Details: oj changes --release 2 --since 2020-07-02")
    assert len(body.splitlines()) < 15


@pytest.mark.parametrize(
    ("statement", "subject"),
    [
        # the example of issue 19: the lead-in and the share go, the routine stays
        ("Det är fortfarande relativt få kommuner, 21 procent, som har en aktuell skriftlig och "
         "på ledningsnivå beslutad rutin för hur handläggare ska säkra skolgången för barn i "
         "skyddat boende.",
         "aktuell skriftlig och på ledningsnivå beslutad rutin för hur handläggare ska säkra "
         "skolgången för barn i skyddat boende"),
        ("22 procent av kommunerna har en aktuell rutin för samordning med förskola och skola. "
         "Det är en ökning mot 18 procent av kommunerna 2020.",
         "aktuell rutin för samordning med förskola och skola"),
        ("Cirka 7 av 10 kommuner erbjuder stödsamtal med biståndsbeslut, vilket är en ökning "
         "med ca 10 procentenheter från föregående år.",
         "erbjuder stödsamtal med biståndsbeslut"),
        ("Få kommuner uppger att de har en upprättad kontinuitetsplan för boenden som tar emot "
         "särskilt sårbara grupper av barn.",
         "upprättad kontinuitetsplan för boenden som tar emot särskilt sårbara grupper av barn"),
        ("Allt fler kommuner, 63 procent, har en aktuell rutin för att upptäcka våld.",
         "aktuell rutin för att upptäcka våld"),
        ("Knappt hälften av kommunerna, 48 procent, erbjuder tolk vid hembesök.",
         "erbjuder tolk vid hembesök"),
        ("I 89 procent av Sveriges kommuner finns möjligheten att kontakta en socialjour.",
         "möjligheten att kontakta en socialjour"),
        ("Var tredje kommun har ett aktuellt avtal om skyddat boende för män.",
         "aktuellt avtal om skyddat boende för män"),
        ("De flesta kommuner, 95 procent, använder en strukturerad bedömningsmetod.",
         "använder en strukturerad bedömningsmetod"),
        ("Andelen kommuner som använder systematisk uppföljning har minskat med sju "
         "procentenheter, från 22 till 15 procent 2019.",
         "använder systematisk uppföljning"),
        # several sentences: the one that holds the figure is the question, its negation kept
        ("Fler kommuner har skriftliga överenskommelser med hyresvärdar. Däremot har 4 av 5 "
         "kommuner inte en aktuell rutin för att förhindra att barnfamiljer avhyses.",
         "inte en aktuell rutin för att förhindra att barnfamiljer avhyses"),
        ("Arbetet fortsätter att utvecklas. 73 procent av kommunerna använder FREDA-kortfrågor "
         "för att upptäcka våld, vilket är en ökning med fem procentenheter från 2018.",
         "använder FREDA-kortfrågor för att upptäcka våld"),
        # no share clause to drop: the statement as printed
        ("Andel handläggare med socionomexamen är 75 procent. Kommuner med fler invånare har "
         "högre andel.",
         "Andel handläggare med socionomexamen är 75 procent"),
    ],
)  # fmt: skip
def test_an_alert_names_the_question_by_its_subject(statement: str, subject: str) -> None:
    assert notify.question_subject(statement) == subject


def test_a_long_subject_is_shortened_in_its_middle() -> None:
    subject = (
        "aktuell skriftlig och på ledningsnivå beslutad rutin för hur handläggare ska säkra "
        "skolgången för barn i skyddat boende"
    )
    assert notify.fit(subject, 200) == subject
    short = notify.fit(subject, 93)  # "- Kalmar: " and " (2020): no → yes" in 120
    assert len(short) <= 93 and " … " in short
    assert short.startswith("aktuell ") and short.endswith("skolgången för barn i skyddat boende")
    assert "rutin för hur handläggare" in short


def test_a_release_without_changes_sends_nothing(history, httpserver: HTTPServer) -> None:
    datasets, records = history
    publish(datasets, records[:1])  # the first capture: nothing to compare with
    url = f"json://localhost:{httpserver.port}/hook"
    assert notify.notify_release(datasets, 1, [url]) == {"sent": 0, "failures": []}
    assert httpserver.log == []


def test_failing_notifications_are_reported_not_raised(history, httpserver: HTTPServer) -> None:
    datasets, records = history
    publish(datasets, records[:2])
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    closed = free_port()  # nobody listens there
    urls = [
        f"json://127.0.0.1:{closed}/hook",
        "nosuchservice://token@example.org",
        f"json://localhost:{httpserver.port}/hook",  # the others still get it
    ]
    outcome = notify.notify_release(datasets, 1, urls)
    assert outcome["sent"] == 1
    assert outcome["failures"] == [
        f"json://127.0.0.1:{closed}/...: the service did not accept the message",
        "nosuchservice://example.org/...: not a notification URL Apprise knows",
    ]
    assert "token" not in " ".join(outcome["failures"])  # secrets are never printed
    assert len(_received(httpserver)) == 1


def test_the_nightly_flow_notifies_once_per_release(
    prefect_server: str, history, httpserver: HTTPServer
) -> None:
    from flows.nightly import nightly

    datasets, _ = history  # the edited captures, in the raw dir helpers.RAW_DIR now names
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    good = f"json://localhost:{httpserver.port}/hook"
    bad = f"json://127.0.0.1:{free_port()}/hook"
    first = nightly(raw_dir=str(helpers.RAW_DIR), datasets_dir=str(datasets), notify=[good, bad])
    # Release 1 holds every capture: its changes are alerted once; the bad URL is reported.
    assert first["new_release"] and first["notifications_sent"] == 1
    assert len(first["notification_failures"]) == 1
    again = nightly(raw_dir=str(helpers.RAW_DIR), datasets_dir=str(datasets), notify=[good])
    assert again["new_release"] is False and "notifications_sent" not in again
    assert len(_received(httpserver)) == 1


def test_a_run_that_fails_outright_alerts_and_a_failed_alert_fails_it_no_further(
    prefect_server: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    from filelock import FileLock
    from helpers import RAW_DIR, run_oj

    from flows import storage

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    dead = free_port()
    notify = ["--notify", f"json://127.0.0.1:{httpserver.port}/hook",
              "--notify", f"json://127.0.0.1:{dead}/hook"]  # fmt: skip
    # Storage unwritable (a file where the datasets folder should be): exit 74.
    as_file = tmp_path / "datasets-file"
    as_file.write_text("not a folder", "utf-8")
    unwritable = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", as_file, *notify,
                        api_url=prefect_server)  # fmt: skip
    assert unwritable.returncode == 74, unwritable.stderr
    # The alert that could not be sent is one line, and the exit code stays the error's.
    assert unwritable.stderr.splitlines() == [
        f"oj run: notification failed: json://127.0.0.1:{dead}/...: "
        "the service did not accept the message",
        f"oj run: cannot write {as_file}: it is a file, not a directory",
    ]
    (alert,) = _received(httpserver)
    assert alert["type"] == "failure"
    assert alert["title"] == (
        f"oppna-jamforelser run failed: cannot write {as_file}: it is a file, not a directory"
    )
    assert "Nothing was published" in alert["message"] and "exits 74" in alert["message"]

    # Another run holds the lock past --lock-timeout: exit 75, the watcher is told.
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    with FileLock(str(datasets / storage.LOCK_FILE)):
        locked = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", datasets,
                        "--lock-timeout", "1", *notify[:2], api_url=prefect_server)  # fmt: skip
    assert locked.returncode == 75, locked.stderr
    alert = _received(httpserver)[-1]
    assert alert["title"].startswith("oppna-jamforelser run failed: ")
    assert "lock" in alert["title"] and "exits 75" in alert["message"]

    # A sources file that cannot be read stops the run before its flow: told as well.
    bad = tmp_path / "sources.toml"
    bad.write_text("[[page]]\nurl = 'https://kalmar.se/x.html'\n", "utf-8")
    usage = run_oj("run", "--raw-dir", RAW_DIR, "--datasets-dir", datasets, "--fetch", "live",
                   "--sources", bad, *notify[:2])  # fmt: skip
    assert usage.returncode == 2, usage.stderr
    alert = _received(httpserver)[-1]
    assert alert["title"].startswith(f"oppna-jamforelser run failed: {bad}")
    assert len(_received(httpserver)) == 3
