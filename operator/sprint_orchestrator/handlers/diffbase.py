"""kopf's diff base (the last handled state of a Sprint) as a digest of its spec, not a copy of it.

kopf keeps the last handled "essence" of a resource to tell a real change from a status write. Its
status storage keeps the whole spec as a JSON string in status.kopf.lastHandledConfiguration, so a
Sprint is stored with its spec twice: a 1,000-task spec of 700 kB becomes a 1.4 MB object, at
etcd's limit before any status. Our handlers only need to know *that* the spec changed (they read
the spec itself from the body), so the essence keeps a digest of the spec and the metadata as kopf
builds it. A changed spec still changes the essence under "spec", so `field="spec"` handlers fire.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf


def spec_digest(spec: Any) -> str:
    """sha256 of the spec's canonical JSON (sorted keys, compact)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class DigestDiffBaseStorage(kopf.StatusDiffBaseStorage):
    """StatusDiffBaseStorage whose essence holds {"spec": {"sha256": ...}} instead of the spec."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        essence = cast(dict[str, Any], super().build(body=body, extra_fields=extra_fields))
        if "spec" in essence:
            essence["spec"] = {"sha256": spec_digest(essence["spec"])}
        return cast(kopf.BodyEssence, essence)
