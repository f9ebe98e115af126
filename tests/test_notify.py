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
    assert "Answer flips:\n- Kalmar: Det är fortfarande relativt få kommuner" in body
    assert ": no → yes" in body
    assert "National figures changed:\n- " in body and "63 % → 64 %" in body
    assert body.endswith("Details: oj changes --release 2 --since 2020-07-02")
    assert len(body.splitlines()) < 15


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
