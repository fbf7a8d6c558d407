"""Kubernetes-convention conditions and small status helpers (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Return the conditions with `type_` set; lastTransitionTime moves only when status changes."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions or []:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != value
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if changed else cond.get("lastTransitionTime", now),
                **({"observedGeneration": generation} if generation is not None else {}),
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
                **({"observedGeneration": generation} if generation is not None else {}),
            }
        )
    return out


def merge_conditions(
    current: Sequence[Mapping[str, Any]] | None, updates: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """`current` (the conditions the API server has now) with each of `updates` set by its type: every
    other type is kept as it is, so two writers of different types never undo each other's."""
    out = [dict(c) for c in current or []]
    for update in updates:
        out = set_condition(
            out,
            str(update["type"]),
            str(update["status"]),
            str(update.get("reason") or ""),
            str(update.get("message") or ""),
            now,
            update.get("observedGeneration"),
        )
    return out


def changed(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `patch` that differs from `current` (top-level keys), so unchanged writes are skipped."""
    return {key: value for key, value in patch.items() if current.get(key) != value}
