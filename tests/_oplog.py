"""The operator's own log as a test oracle: an e2e test fails when the operator logged an unexpected
exception or handler error, even if kopf retried past it and the sprint still finished.

JSON lines (`sprintctl operator --log-format json`) at severity error/fatal, or carrying exc_info, and
any plain-text traceback count. A test that provokes an error on purpose names it in `allowed`
(regular expressions matched against the message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

_BAD_SEVERITIES = frozenset({"error", "fatal", "critical"})
_PLAIN_ERROR = re.compile(r"^\[[0-9 :,.-]+\] \S+ +\[(ERROR|CRITICAL) *\]")  # kopf's plain/full format


# kopf's API client retrying the apiserver's "come back in a second" while a new CRD's storage starts:
# the apiserver's doing, not ours, and kopf says it will retry.
EXPECTED = (r"Request attempt #\d+/\d+ failed; will retry: .*'storage is \(re\)initializing'.*status=429",)


def unexpected_errors(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """The log records of `text` that report an error nobody expected, one line each."""
    patterns = [re.compile(p) for p in (*EXPECTED, *allowed)]
    found: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        message = _problem(line, last=number == len(lines))
        if message and not any(p.search(message) for p in patterns):
            found.append(f"line {number}: {message[:600]}")
    return found


def _problem(line: str, last: bool) -> str | None:
    stripped = line.strip()
    if not stripped:
        return None
    try:
        record = json.loads(stripped)
    except ValueError:
        if last:
            return None  # a SIGKILLed operator may leave half a line
        plain_error = _PLAIN_ERROR.search(stripped) or "Traceback (most recent call last)" in stripped
        return stripped if plain_error else None
    if not isinstance(record, dict):
        return None
    severity = str(record.get("severity") or record.get("levelname") or "").lower()
    if severity in _BAD_SEVERITIES or record.get("exc_info"):
        detail = str(record.get("exc_info") or "").strip().splitlines()[-1:] or [""]
        return f"{severity}: {record.get('message')} {detail[0]}".strip()
    return None


def assert_clean_log(log: Path, allowed: Iterable[str] = ()) -> None:
    text = log.read_text(errors="replace") if log.exists() else ""
    problems = unexpected_errors(text, allowed)
    assert not problems, f"the operator logged unexpected errors ({log}):\n" + "\n".join(problems[:20])


_WATCHED: list[Path] = []


def watch(log: Path) -> None:
    """Check this operator log when the current test ends (called by `_e2e.start_operator`)."""
    if log not in _WATCHED:
        _WATCHED.append(log)


@pytest.fixture(autouse=True)
def _operator_logs_are_clean(request: pytest.FixtureRequest) -> object:
    """Fail the test if an operator it started logged an unexpected error. Allow one on purpose with
    `@pytest.mark.operator_errors(r"regex", ...)`."""
    _WATCHED.clear()
    yield
    allowed = [pattern for mark in request.node.iter_markers("operator_errors") for pattern in mark.args]
    logs = list(_WATCHED)
    _WATCHED.clear()
    for log in logs:
        assert_clean_log(log, allowed)
