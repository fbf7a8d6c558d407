"""The e2e oracle that reads the operator's log."""

from __future__ import annotations

import json

from _oplog import unexpected_errors


def line(**record: object) -> str:
    return json.dumps(record)


def test_an_error_record_is_reported_with_its_exception() -> None:
    text = "\n".join(
        [
            line(message="all fine", severity="info"),
            line(message="Handler 'x' failed", severity="error", exc_info="Traceback...\nKeyError: 'a'"),
            line(message="done", severity="info"),
        ]
    )
    assert unexpected_errors(text) == ["line 2: error: Handler 'x' failed KeyError: 'a'"]


def test_info_and_warnings_are_not_errors() -> None:
    text = line(message="task t failed: gate", severity="warn") + "\n" + line(message="ok", severity="info")
    assert unexpected_errors(text) == []


def test_a_logged_exception_at_info_level_still_counts() -> None:
    assert unexpected_errors(line(message="retrying", severity="info", exc_info="ValueError: x"))


def test_a_plain_traceback_counts_but_a_cut_last_line_does_not() -> None:
    assert unexpected_errors("Traceback (most recent call last):\nmore") == [
        "line 1: Traceback (most recent call last):"
    ]
    assert unexpected_errors(line(message="ok", severity="info") + '\n{"message": "half') == []


def test_an_allowed_error_is_not_reported() -> None:
    text = line(message="image build failed for sprint s", severity="error")
    assert unexpected_errors(text, allowed=[r"image build failed"]) == []
    assert unexpected_errors(text, allowed=[r"something else"]) != []


def test_kopf_plain_format_errors_count() -> None:
    text = "[2026-12-06 15:00:00,123] kopf.objects [ERROR   ] Handler 'x' failed with an exception.\n"
    assert len(unexpected_errors(text + "[2026-12-06 15:00:00,200] kopf [INFO    ] ok\n")) == 1


def test_kopf_retrying_a_starting_crd_storage_is_expected_but_other_retries_are_not() -> None:
    msg = "Request attempt #1/9 failed; will retry: GET https://x/tasks -> APITooManyRequestsError("
    starting = msg + "'storage is (re)initializing', {}, status=429)"
    assert unexpected_errors(line(message=starting, severity="error")) == []
    assert unexpected_errors(line(message=msg + "'boom', {}, status=500)", severity="error"))
