"""stamps.py: the one RFC 3339 formatter of the status, the audit lines and the runtimes' stamps."""

from __future__ import annotations

import datetime as dt

from sprint_orchestrator.stamps import now_iso, rfc3339


def test_a_time_is_written_in_utc_with_milliseconds_and_a_z_a_naive_one_taken_as_utc() -> None:
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, 678901)) == "2026-01-02T03:04:05.678Z"
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)) == "2026-01-02T01:04:05.000Z"


def test_now_reads_back_as_the_current_utc_time() -> None:
    stamp = now_iso()
    assert stamp.endswith("Z") and len(stamp) == len("2026-01-02T03:04:05.678Z")
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 60
