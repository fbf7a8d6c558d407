"""The Lease's pure decisions (lease.py); the fence and the fail-over: tests/chaos/test_chaos_lease.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sprint_orchestrator import lease

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def held_by(who: str, renewed: dt.datetime, seconds: int = 15) -> dict[str, Any]:
    return {"holderIdentity": who, "renewTime": lease.micro_time(renewed), "leaseDurationSeconds": seconds}


def test_a_free_an_own_or_an_expired_lease_may_be_taken_a_live_one_of_another_may_not() -> None:
    assert lease.may_take({}, "me", NOW)
    assert lease.may_take(held_by("me", NOW), "me", NOW)
    assert not lease.may_take(held_by("other", NOW - dt.timedelta(seconds=14)), "me", NOW)
    assert lease.may_take(held_by("other", NOW - dt.timedelta(seconds=16)), "me", NOW)


def test_taking_a_lease_counts_a_transition_and_renewing_keeps_the_acquire_time() -> None:
    taken = lease.next_spec(held_by("other", NOW, 15) | {"leaseTransitions": 2}, "me", NOW, 10)
    assert taken["holderIdentity"] == "me" and taken["leaseTransitions"] == 3
    later = NOW + dt.timedelta(seconds=3)
    renewed = lease.next_spec(taken, "me", later, 10)
    assert renewed["acquireTime"] == taken["acquireTime"] and renewed["renewTime"] == lease.micro_time(later)
    assert renewed["leaseTransitions"] == 3
