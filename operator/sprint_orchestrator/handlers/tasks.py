"""Task handlers: any change to a Task wakes its Sprint's loop, which does all the deciding."""

from __future__ import annotations

from typing import Any

import kopf

from .. import GROUP, LABEL_SPRINT, VERSION
from ..kube import TASKS
from .context import OperatorContext


@kopf.on.event(GROUP, VERSION, TASKS)
def task_changed(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    ctx = memo.get("context")
    sprint = labels.get(LABEL_SPRINT)
    if isinstance(ctx, OperatorContext) and sprint:
        ctx.wake(f"{namespace}/{sprint}")
