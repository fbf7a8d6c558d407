"""PURE: the sprint report (JSON data and Markdown) from a Sprint and its Tasks.

Resource utilization = busy slot-seconds / (slots x wall time): how full the parallel slots were
while the sprint ran, the wall time counted from the first task's admission (not from the sprint's
branch and image set-up). Example: 2 slots, 10 s wall time, tasks busy for 6 s and 8 s -> 14/20 = 0.7.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any


def _when(stamp: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def build(sprint: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]], now: dt.datetime) -> dict[str, Any]:
    spec, status = sprint.get("spec") or {}, sprint.get("status") or {}
    slots = int(spec.get("maxParallelTasks") or 5)
    rows = [_row(t) for t in sorted(tasks, key=lambda t: t["spec"]["taskId"])]
    # The slots' window opens at the first admission: branch and image set-up is not slot time.
    admitted = [when for r in rows if (when := _when(r["start"])) is not None]
    started = min(admitted) if admitted else (_when(status.get("startedAt")) or now)
    wall = max((now - started).total_seconds(), 1e-9)
    busy = sum(r["durationSeconds"] or 0.0 for r in rows)
    estimated = sum(r["tokensEstimated"] or 0 for r in rows)
    actual = sum(r["tokensActual"] or 0 for r in rows)
    by_outcome: dict[str, int] = {}
    for r in rows:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
    gates = [g for t in tasks for g in ((t.get("status") or {}).get("gates") or [])]
    tokens = status.get("tokens") or {}
    return {
        "sprintId": spec.get("sprintId") or sprint["metadata"]["name"],
        "name": spec.get("displayName") or sprint["metadata"]["name"],
        "startedAt": status.get("startedAt"),
        "reportedAt": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "wallSeconds": round(wall, 1),
        "slots": slots,
        "slotUtilization": round(min(busy / (slots * wall), 1.0), 4),
        "outcomes": by_outcome,
        "tokens": {
            "estimated": estimated,
            "actual": actual,
            "efficiency": round(actual / estimated, 4) if estimated else None,
            "byCategory": tokens.get("byCategory") or {},
            "byModel": tokens.get("byModel") or {},
            "budget": tokens.get("budget"),
        },
        "gates": {
            "passed": sum(1 for g in gates if g.get("passed")),
            "failed": sum(1 for g in gates if not g.get("passed")),
        },
        "conflicts": {r["taskId"]: r["conflicts"] for r in rows if r["conflicts"]},
        "tasks": rows,
        "timeline": sorted(
            ({"taskId": r["taskId"], "start": r["start"], "end": r["end"]} for r in rows if r["start"]),
            key=lambda e: e["start"],
        ),
    }


def _row(task: Mapping[str, Any]) -> dict[str, Any]:
    status = task.get("status") or {}
    tokens = status.get("tokens") or {}
    gates = status.get("gates") or []
    return {
        "taskId": task["spec"]["taskId"],
        "title": task["spec"].get("title", ""),
        "outcome": (status.get("phase") or "Pending").lower(),
        "reason": status.get("reason") or "",
        "attempts": int(status.get("attempt") or 0),
        "durationSeconds": status.get("durationSeconds"),
        "start": status.get("startTime"),
        "end": status.get("completionTime"),
        "tokensEstimated": tokens.get("estimated"),
        "tokensActual": tokens.get("actual"),
        "efficiency": tokens.get("efficiency"),
        "byCategory": tokens.get("byCategory") or {},
        "byModel": tokens.get("byModel") or {},
        "gatesPassed": sum(1 for g in gates if g.get("passed")),
        "gatesFailed": sum(1 for g in gates if not g.get("passed")),
        "conflicts": list(status.get("conflicts") or []),
        "mergeCommit": status.get("mergeCommit"),
    }


def markdown(data: Mapping[str, Any]) -> str:
    tokens = data["tokens"]
    lines = [
        f"# Sprint report: {data['name']} ({data['sprintId']})",
        "",
        f"- Started: {data['startedAt']}; reported: {data['reportedAt']}; wall time {data['wallSeconds']} s",
        "- Outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(data["outcomes"].items())),
        f"- Tokens: {tokens['actual']} actual vs {tokens['estimated']} estimated"
        + (f" (efficiency {tokens['efficiency']})" if tokens["efficiency"] is not None else "")
        + (f"; budget {tokens['budget']}" if tokens.get("budget") is not None else ""),
        f"- Quality gates: {data['gates']['passed']} passed, {data['gates']['failed']} failed",
        f"- Resource utilization: {data['slotUtilization']:.0%} of {data['slots']} slots",
        "",
        "| Task | Outcome | Attempts | Duration (s) | Tokens est. | Tokens actual | Gates | Conflicts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["tasks"]:
        lines.append(
            f"| {r['taskId']} | {r['outcome']}{' (' + r['reason'] + ')' if r['reason'] else ''} | "
            f"{r['attempts']} | {r['durationSeconds'] if r['durationSeconds'] is not None else '-'} | "
            f"{r['tokensEstimated'] if r['tokensEstimated'] is not None else '-'} | "
            f"{r['tokensActual'] if r['tokensActual'] is not None else '-'} | "
            f"{r['gatesPassed']}/{r['gatesPassed'] + r['gatesFailed']} | {', '.join(r['conflicts']) or '-'} |"
        )
    if tokens["byCategory"]:
        lines += ["", "## Tokens by category", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(tokens["byCategory"].items())]
    if tokens["byModel"]:
        lines += ["", "## Tokens by model", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(tokens["byModel"].items())]
    lines += ["", "## Timeline", ""]
    lines += [f"- {e['start']} → {e['end'] or '…'}: {e['taskId']}" for e in data["timeline"]]
    return "\n".join(lines) + "\n"


STATUS_MARKDOWN_MAX = 65536


def status_markdown(text: str, path: str) -> str:
    """The report as the Sprint's status keeps it: whole up to 64 KiB (a 100-task report is ~20 KiB),
    else its head and a line naming the committed file (a 1,000-task report must not fill the Sprint's
    etcd object, nor exceed status.report.markdown's maxLength)."""
    if len(text) <= STATUS_MARKDOWN_MAX:
        return text
    note = f"\n… truncated here; the whole report is {path} on the sprint branch\n"
    head = text[: STATUS_MARKDOWN_MAX - len(note)]
    return head[: head.rfind("\n") + 1 or len(head)] + note
