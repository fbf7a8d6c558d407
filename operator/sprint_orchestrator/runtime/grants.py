"""Transfer grants kept on disk, so a restarted operator adopts the task Pods it finds instead of losing
their results (the token of a running Pod would otherwise exist only in the dead process's memory).

One JSON file per grant under the state directory (`transfer/<key>.json`, mode 0600), written atomically
when the grant is made and when it changes (its workspace served, a result received), removed when it
is revoked. The key is the SHA-256 of the token: the token itself is never written (it travels only in
the Pod's spec, and a request is matched by hashing what it presents), so the state directory holds no
credential for the endpoint.

    {"pod": "so-s1-t1-1-ab12", "workspace": "/…/workspace", "results": {"workspace": "/…", …},
     "mounts": ["/…/team"], "max_bytes": 1073741824, "served": true, "served_mounts": [0],
     "received": {"artifacts": "ok 3 members"}, "refused": {}, "reported_exit": 0}

A result that was being received when the operator died counts as not received (the spooled upload
died with it); the Pod's wrapper retries its upload while the operator is away.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass
class Grant:
    """What one attempt's token allows: its workspace out once, each named result in once."""

    workspace: Path
    results: dict[str, Path]
    max_bytes: int
    mounts: list[Path] = field(default_factory=list)
    pod: str = ""
    served: bool = False
    served_mounts: set[int] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)  # what went out whole: "workspace", "mount/<i>"
    received: dict[str, str] = field(default_factory=dict)  # name -> "ok N members" or the refusal
    refused: dict[str, list[str]] = field(default_factory=dict)
    reported_exit: int | None = None  # what the Pod's wrapper said its command exited with
    # Results that become an image layer file (ocilayer.py), not a tree: a build Pod's, never kept on
    # disk (a one-shot's grant dies with its operator), and the layer each one became.
    as_layers: frozenset[str] = frozenset()
    layers: dict[str, Any] = field(default_factory=dict)

    @property
    def fetched(self) -> bool:
        """Whether the workspace and every mount went out whole."""
        return {"workspace", *(f"mount/{i}" for i in range(len(self.mounts)))} <= self.sent

    @property
    def reported_success(self) -> bool:
        """The wrapper said its command exited 0 and every result tree has arrived (or been refused):
        nothing more comes from the Pod, so its end need not wait for the kubelet's status."""
        settled = all(self.received.get(name, "receiving") != "receiving" for name in self.results)
        return self.reported_exit == 0 and settled


class GrantStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(self, key: str, grant: Grant) -> None:
        data = {
            "pod": grant.pod,
            "workspace": str(grant.workspace),
            "results": {name: str(path) for name, path in grant.results.items()},
            "mounts": [str(m) for m in grant.mounts],
            "max_bytes": grant.max_bytes,
            "served": grant.served,
            "served_mounts": sorted(grant.served_mounts),
            "sent": sorted(grant.sent),
            "received": {k: v for k, v in grant.received.items() if v != "receiving"},
            "refused": grant.refused,
            "reported_exit": grant.reported_exit,
        }
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".grant-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self.root / f"{_checked(key)}.json")

    def remove(self, key: str) -> None:
        (self.root / f"{_checked(key)}.json").unlink(missing_ok=True)

    def load(self) -> dict[str, Grant]:
        """Every grant on disk by key; an unreadable file is dropped (its Pod then ends without result)."""
        grants: dict[str, Grant] = {}
        for path in sorted(self.root.glob("*.json")):
            if not _KEY.fullmatch(path.stem):
                continue
            try:
                grants[path.stem] = _grant(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError):
                path.unlink(missing_ok=True)
        return grants


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a grant key: {key!r}")
    return key


def _grant(data: dict[str, Any]) -> Grant:
    return Grant(
        workspace=Path(data["workspace"]),
        results={str(k): Path(v) for k, v in dict(data["results"]).items()},
        max_bytes=int(data["max_bytes"]),
        mounts=[Path(m) for m in data.get("mounts") or []],
        pod=str(data.get("pod") or ""),
        served=bool(data.get("served")),
        served_mounts={int(i) for i in data.get("served_mounts") or []},
        sent={str(name) for name in data.get("sent") or []},
        received={str(k): str(v) for k, v in dict(data.get("received") or {}).items()},
        refused={str(k): [str(p) for p in v] for k, v in dict(data.get("refused") or {}).items()},
        reported_exit=None if data.get("reported_exit") is None else int(data["reported_exit"]),
    )
