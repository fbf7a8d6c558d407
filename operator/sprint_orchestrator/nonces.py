"""Requests to the operator as annotations (retry, approve, cancel, request changes): a fresh nonce per
request, so the same request twice is two requests, and an Event saying who asked. Used by sprintctl and
the dashboard alike."""

from __future__ import annotations

import uuid
from typing import Any

from .kube import Kube


def annotate(
    kube: Kube,
    plural: str,
    obj: dict[str, Any],
    key: str,
    reason: str,
    message: str,
    extra: dict[str, str] | None = None,
) -> str:
    """Set `key` to a fresh nonce (with `extra` annotations in the same write) and record an Event."""
    nonce = uuid.uuid4().hex[:12]
    meta = obj["metadata"]
    annotations = {**(extra or {}), key: nonce}
    kube.patch(plural, meta["namespace"], meta["name"], {"metadata": {"annotations": annotations}})
    kube.event(obj, reason, message)
    return nonce
