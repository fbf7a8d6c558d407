"""One-shot Pods of the Kubernetes runtime (pods.py): quality gates, integration checks, and the build
Pod of a sprint image (podbuild.py), each with a one-time transfer grant revoked after the run.

A Pod the API server refuses for good is `PodRejected`; one it did not take for now (busy, quota, away)
is an infrastructure failure (`POD_FAILED`), never the command's verdict; nor is a Pod that ended
without its whole workspace (`podspec.FETCH_FAILED`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PodRejected
from ..kube import KubeError
from . import (
    ANYWHERE,
    LABEL_ROLE,
    Health,
    Limits,
    OneshotResult,
    RunHandle,
    RunOutcome,
    Scheduling,
    logs,
    ocilayer,
    podbuild,
    podnet,
    podpool,
    podspec,
    podstatus,
)

if TYPE_CHECKING:
    from .pods import PodsRuntime

POD_FAILED = "PodFailed"  # a one-shot Pod the API server did not take for now (busy, quota, away)


def build(
    rt: PodsRuntime, image: str, environment: Mapping[str, str], layer: Path, route: podbuild.Network
) -> tuple[OneshotResult, ocilayer.Layer | None]:
    """A build Pod (podbuild.py): `podbuild.command()` in `image`, reaching only `route`'s package
    sources; what it leaves in /artifacts comes back as the image layer file `layer`."""
    empty = layer.parent / "workspace"
    empty.mkdir(parents=True, exist_ok=True)
    results = {"workspace": empty, "artifacts": layer}
    token = rt.transfer.grant(empty, results, podbuild.LAYER_MAX_BYTES, as_layers=frozenset({"artifacts"}))
    grant = rt.transfer.grant_of(token)  # kept: the layer is on it once the run is over
    outcome = run_once(
        rt, image, podbuild.command(), token, podbuild.BUILD_TIMEOUT_S, podbuild.BUILD_LIMITS,
        environment=environment, route=route,
    )  # fmt: skip
    built = grant.layers.get("artifacts") if grant is not None else None
    if outcome.exit_code == 0 and built is None:
        problems = "; ".join((grant.refused.get("artifacts") if grant else None) or ["no upload arrived"])
        why = f"{outcome.log_tail}\nthe layer was refused: {problems}\n"
        outcome = replace(outcome, exit_code=None, log_tail=logs.tail(why))
    return outcome, built


def run_once(
    rt: PodsRuntime,
    image: str,
    command: Sequence[str],
    token: str,
    timeout_s: float,
    limits: Limits,
    owner: Mapping[str, Any] | None = None,
    scheduling: Scheduling = ANYWHERE,
    environment: Mapping[str, str] | None = None,
    route: podbuild.Network | None = None,
) -> OneshotResult:
    """One Pod run with the grant `token` (revoked after); a build (`route`) uploads its layer."""
    name = f"so-oneshot-{uuid.uuid4().hex[:12]}"
    labels = {LABEL_ROLE: "oneshot", podnet.LABEL_POD: name, **rt.marks}  # podsweep.py
    owners = podnet.owner_reference(owner, rt.namespace)
    pod = podspec.PodRun(
        name, rt.namespace, image, command, rt.transfer.url(token), labels,
        limits, timeout_s, dict(environment or {}), upload=route is not None, owners=owners,
        scheduling=scheduling, canary=rt.canary_address, policy_wait_s=rt.policy_wait_s,
        host_aliases=route.aliases if route else {},
        tmp_limit=podbuild.TMP_LIMIT if route else podspec.TMP_LIMIT, pull_secret=rt.pull_secret,
    )  # fmt: skip
    begin = time.perf_counter()
    try:
        rt.fences.attach(name, labels, {}, owners, route.egress if route else ())
        rt.kube.create_pod(rt.namespace, podspec.manifest(pod))
        outcome = _watched(rt, name, token, timeout_s)
    except KubeError as exc:  # never the command's verdict: a refusal that holds, or the cluster's
        if podstatus.create_refusal_is_final(exc.status, str(exc)):
            raise PodRejected(f"cannot create Pod {name} from {image}: {exc}") from None
        why = f"the Pod failed to run: {exc}"
        return OneshotResult(None, time.perf_counter() - begin, why, infrastructure=POD_FAILED)
    finally:
        _ended(rt, name, token)
    return _result(outcome, begin)


def run_warm(
    rt: PodsRuntime, warm: podpool.Warm, command: str, workdir: Path, timeout_s: float
) -> OneshotResult | None:
    """The run of the shell `command` on a copy of `workdir` in a warm Pod (podpool.py); None when the
    Pod did not take it (gone meanwhile): nothing ran, the caller starts a fresh Pod."""
    begin = time.perf_counter()
    if not rt.transfer.assign(warm.token, workdir, command):
        rt.pool.discard(warm)
        return None
    try:
        outcome = _watched(rt, warm.name, warm.token, timeout_s)
    except KubeError as exc:  # the cluster's, never the command's verdict
        return OneshotResult(
            None, time.perf_counter() - begin, f"the Pod failed: {exc}", infrastructure=POD_FAILED
        )
    finally:
        _ended(rt, warm.name, warm.token)
    return _result(outcome, begin)


def _watched(rt: PodsRuntime, name: str, token: str, timeout_s: float) -> RunOutcome:
    """The Pod's outcome; a Pod that ended without its whole workspace: not its command's verdict."""
    outcome = rt.wait(RunHandle(name, "", "", "", 0, rt._log(name), None), timeout_s)
    grant = rt.transfer.grant_of(token)
    if outcome.health == Health.EXITED and (grant is None or not grant.fetched):
        outcome = replace(outcome, exit_code=None, reason=podspec.FETCH_FAILED)
    return outcome


def _ended(rt: PodsRuntime, name: str, token: str) -> None:
    rt.transfer.revoke(token)
    rt._delete(name)
    rt._ours.discard(name)  # a one-shot's name is never used again
    rt.fences.unfence(name)


def _result(outcome: RunOutcome, begin: float) -> OneshotResult:
    text = outcome.log_path.read_text(errors="replace")
    outcome.log_path.unlink(missing_ok=True)
    outcome.log_path.with_suffix(".stdout").unlink(missing_ok=True)
    if outcome.reason and outcome.exit_code is None:
        text += f"\n{outcome.reason}\n"
    timed_out = outcome.health == Health.TIMED_OUT
    return OneshotResult(
        outcome.exit_code, time.perf_counter() - begin, logs.tail(text), timed_out, outcome.infrastructure
    )
