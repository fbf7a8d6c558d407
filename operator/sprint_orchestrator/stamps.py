"""Times as the operator writes them: RFC 3339 in UTC with milliseconds (task durations are often
around a second), one formatter for the status, the audit lines and the runtimes' stamps."""

from __future__ import annotations

import datetime as dt


def rfc3339(moment: dt.datetime) -> str:
    """`moment` in UTC with milliseconds and a Z; a naive time is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))
