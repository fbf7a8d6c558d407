"""The Pods runtime's start-up sweep (`PodsRuntime.prune_oneshots`): what an operator that was killed
(SIGKILL) left in the task namespace.

- **One-shot Pods** (gates, integration checks) an earlier process of this operator started and never
  removed: no one waits for their verdict any more (a restarted operator runs its gates again). Deleted,
  their NetworkPolicy once each is gone (podfence.py), as the operator removes any Pod.
- **NetworkPolicies and Secrets whose Pod is gone** (the operator died between deleting a Pod and its
  fence, or between putting the fence and creating the Pod): deleted; their Task would only collect them
  when it is deleted. A policy that still selects a Pod stays, whatever made it (a task Pod a restarted
  operator adopts keeps running behind it); one whose Pods are all going (Terminating) is deleted once
  they are gone.

Ours means precisely: the object's `LABEL_OWNER` is this operator's id (kept in its state directory:
`owner_id`), its `LABEL_INSTANCE` names another process than this one (a fence or gate this process
has just made is never touched), and its `podnet.LABEL_POD` is its own name. Objects of another operator,
or of versions before these labels (their Tasks still collect them), are left alone. The deletes carry
the uid and resourceVersion read: a policy this process replaced in between (a new Pod of that name) is
kept. Secrets are not listed (the Role may only read them by name): a Pod's Secret is put after its
policy and deleted before it, so an orphaned Secret has an orphaned policy of its name.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..kube import KubeError
from . import LABEL_INSTANCE, LABEL_OWNER, LABEL_ROLE
from .podnet import LABEL_POD

if TYPE_CHECKING:
    from ..kube import Kube
    from .podfence import Fences

ROLES = ("task", "oneshot")
_ID = re.compile(r"[0-9a-f]{32}")


def owner_id(path: Path) -> str:
    """This operator's id, kept in `path` (under its state directory) so that its restarts share it; made
    at random the first time (the chart's state directories all have one path: no hash of it)."""
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if _ID.fullmatch(text):
            return text
    made = uuid.uuid4().hex
    path.write_text(made + "\n")
    return made


def marks(owner: str, instance: str) -> dict[str, str]:
    return {LABEL_OWNER: owner, LABEL_INSTANCE: instance}


# --- the pure decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    kind: str  # NetworkPolicy or Secret
    name: str
    uid: str
    version: str  # resourceVersion


@dataclass(frozen=True)
class Sweep:
    pods: tuple[str, ...] = ()  # one-shot Pods an earlier process left: delete
    gone: tuple[Leftover, ...] = ()  # fences whose Pod is gone: delete now (Secrets first)
    going: tuple[Leftover, ...] = ()  # fences whose Pods are going (deleted here, or Terminating): after

    def names(self) -> list[str]:
        """The fences to read the Secret of (by name)."""
        return sorted({f.name for f in (*self.gone, *self.going) if f.kind == "NetworkPolicy"})

    def after(self) -> dict[str, dict[str, tuple[str, str]]]:
        """Pod name -> kind -> (uid, resourceVersion) of each fence to delete once the Pod is gone."""
        out: dict[str, dict[str, tuple[str, str]]] = {}
        for fence in self.going:
            out.setdefault(fence.name, {})[fence.kind] = (fence.uid, fence.version)
        return out


def _meta(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return item.get("metadata") or {}


def _labels(item: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(item).get("labels") or {}


def left_behind(item: Mapping[str, Any], owner: str, instance: str) -> bool:
    """Made for a Pod of its own name by this operator (`owner`) in an earlier process than `instance`."""
    labels, name = _labels(item), str(_meta(item).get("name") or "")
    made_by = labels.get(LABEL_INSTANCE) or ""
    return (
        bool(name)
        and labels.get(LABEL_POD) == name
        and labels.get(LABEL_ROLE) in ROLES
        and labels.get(LABEL_OWNER) == owner
        and made_by not in ("", instance)
    )


def _selects(policy: Mapping[str, Any]) -> str:
    """The Pod label value a policy selects by; "" for a selector that is not exactly one of ours."""
    selector = ((policy.get("spec") or {}).get("podSelector")) or {}
    match = selector.get("matchLabels") or {}
    if selector.get("matchExpressions") or set(match) != {LABEL_POD}:
        return ""
    return str(match[LABEL_POD])


def _leftover(item: Mapping[str, Any], kind: str) -> Leftover:
    meta = _meta(item)
    return Leftover(
        kind, str(meta["name"]), str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
    )


def decide(
    pods: Iterable[Mapping[str, Any]],
    policies: Iterable[Mapping[str, Any]],
    owner: str,
    instance: str,
    secrets: Iterable[Mapping[str, Any]] = (),
) -> Sweep:
    """What to delete, from a listing of the policies and then of the Pods carrying `LABEL_POD` (in that
    order: a fence put after the first listing is this process's, one put before it has its Pod listed
    or is deleted only as read) and the Secrets of the fences found (`Sweep.names`)."""
    pods = list(pods)
    gates = tuple(
        sorted(
            str(_meta(p)["name"])
            for p in pods
            if _labels(p).get(LABEL_ROLE) == "oneshot" and left_behind(p, owner, instance)
        )
    )
    selected: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        selected.setdefault(str(_labels(pod).get(LABEL_POD) or ""), []).append(pod)
    gone: dict[str, Leftover] = {}
    going: dict[str, Leftover] = {}
    for policy in policies:
        name = str(_meta(policy).get("name") or "")
        if not left_behind(policy, owner, instance) or _selects(policy) != name:
            continue
        fenced = selected.get(name, [])
        if not fenced:
            gone[name] = _leftover(policy, "NetworkPolicy")
        elif all(_meta(p).get("name") in gates or _meta(p).get("deletionTimestamp") for p in fenced):
            going[name] = _leftover(policy, "NetworkPolicy")
    extra_gone, extra_going = [], []
    for secret in secrets:
        name = str(_meta(secret).get("name") or "")
        if left_behind(secret, owner, instance) and name in gone:
            extra_gone.append(_leftover(secret, "Secret"))
        elif left_behind(secret, owner, instance) and name in going:
            extra_going.append(_leftover(secret, "Secret"))
    return Sweep(
        gates,
        (*sorted(extra_gone, key=_key), *sorted(gone.values(), key=_key)),
        tuple(sorted([*going.values(), *extra_going], key=_key)),
    )


def _key(fence: Leftover) -> tuple[str, str]:
    return fence.name, fence.kind


# --- the sweep, through the Kubernetes adapter ----------------------------------------------------------


def sweep(
    kube: Kube,
    namespace: str,
    fences: Fences,
    owner: str,
    instance: str,
    delete_pod: Callable[[str], None],
) -> list[str]:
    """Delete what `decide` says; the names of the Pods and fences removed (or to go once their Pod has).
    A listing that fails raises KubeError; a delete that fails is left for the next sweep."""
    selector = f"{LABEL_POD},{LABEL_OWNER}={owner},{LABEL_INSTANCE},{LABEL_INSTANCE}!={instance}"
    policies = kube.list_namespaced("NetworkPolicy", namespace, selector)
    pods = kube.list_pods(namespace, LABEL_POD)
    first = decide(pods, policies, owner, instance)
    secrets = [s for n in first.names() if (s := kube.get_namespaced("Secret", namespace, n)) is not None]
    plan = decide(pods, policies, owner, instance, secrets)
    removed: set[str] = set()
    for name in plan.pods:
        with contextlib.suppress(KubeError):
            delete_pod(name)
            removed.add(name)
    for fence in plan.gone:
        with contextlib.suppress(KubeError):
            if kube.delete_namespaced(fence.kind, namespace, fence.name, fence.uid, fence.version):
                removed.add(fence.name)
    for name, versions in plan.after().items():
        fences.unfence(name, versions)
        removed.add(name)
    return sorted(removed)
