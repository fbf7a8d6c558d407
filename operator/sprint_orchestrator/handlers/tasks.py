"""Task handlers: any change to a Task updates the loops' task cache and wakes its Sprint's loop, which
does all the deciding."""

from __future__ import annotations

from typing import Any

import kopf

from .. import GROUP, LABEL_SPRINT, VERSION
from ..kube import TASKS
from .context import OperatorContext


@kopf.on.event(GROUP, VERSION, TASKS)
def task_changed(
    event: kopf.RawEvent, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    ctx = memo.get("context")
    sprint = labels.get(LABEL_SPRINT)
    if isinstance(ctx, OperatorContext) and sprint:
        raw = event.get("object")
        if isinstance(raw, dict):
            if event.get("type") == "DELETED":
                ctx.task_cache.forget(raw)
            else:
                ctx.task_cache.remember(raw)
        ctx.wake(f"{namespace}/{sprint}")
