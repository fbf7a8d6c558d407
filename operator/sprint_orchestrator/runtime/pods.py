"""The Kubernetes runtime (`containers.runtime: pods`): tasks and gates as Pods on the cluster's nodes.

No disk is shared with the nodes: each attempt gets a one-time token on the operator's transfer endpoint
(`transfer.py`); the Pod's wrapper fetches the workspace through it and, for a task, uploads the result
trees back (`podspec.py` says how and why); a Pod that ended without its whole workspace is reported as
a lost download whatever it exited with (`podspec.FETCH_FAILED`). Pod I/O goes through `kube.Kube`.
The sprint image is pinned by digest and assembled in `containers.registry` only when something must
be baked in (`podimages.py`: its packages from a build Pod, no Podman in the cluster).

Each grant is kept under the state directory (`grants.py`): a restarted operator re-registers them and
adopts the task Pods it finds by name and labels, their results still coming back. Read-only directory
mounts (the team's files, recipes) are copied in like the workspace. Each Pod comes with a
NetworkPolicy (no ingress; egress to the operator's transfer and proxy ports only) and, when the attempt
has secrets, a Secret its env references; the Task owns all three (`podnet.py`), the policy is deleted
only once its Pod is gone (`podfence.py`), and a restarted operator sweeps the one-shot Pods and fences
its killed predecessor left (`podsweep.py`). Gates, integration checks and image builds are one-shot
Pods (`podoneshot.py`). Agent teams reach the
metering proxy on `proxy_socket` (bound beside the transfer endpoint) with a per-attempt credential
(`proxy/tcp.py`), which a restarted operator honours again. Not in this slice: writable or single-file
mounts (refused).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import LABEL_SPRINT
from ..errors import PodRejected, RuntimeUnavailable, TaskStartFailed
from ..kube import Kube, KubeError
from . import (
    ANYWHERE,
    LABEL_ROLE,
    LABEL_TENANT,
    ContainerInfo,
    Health,
    ImageResult,
    Limits,
    OneshotResult,
    RunHandle,
    RunOutcome,
    Scheduling,
    TaskRunSpec,
    container_name,
    images,
    podimages,
    podnet,
    podoneshot,
    podpool,
    podspec,
    podstatus,
    podsweep,
    task_labels,
)
from .canary import Canary, listener
from .podend import ReportedEnds
from .podfence import Fences
from .podwatch import PodWatcher, RecentNames
from .registry import load_credentials
from .transfer import GrantStore, key_of, open_endpoint, split_address

if TYPE_CHECKING:
    from ..settings import Settings

REMOVE_GRACE_S = 1  # after SIGTERM; the Pod's NetworkPolicy goes once its object does (podfence.py)
UNFENCE_AT_CLOSE_S = 15.0  # how long a stopping operator waits for its removed Pods to go


class PodsRuntime:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        transfer_host: str,
        state_dir: Path,
        registry: str | None = None,
        settings: Settings | None = None,
        listen: str | None = None,
        registry_plain_http: bool = False,
        proxy_port: int = 0,
        stalls: podstatus.StallPolicy = podstatus.DEFAULT_STALLS,
        canary_port: int = 0,
        policy_wait_s: float = 60,
        warm_gate_pods: int = 0,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        host, port = split_address(listen or transfer_host)
        store = GrantStore(state_dir / "transfer")
        self.transfer = open_endpoint(host, port, transfer_host, store)
        # The metering proxy serves task Pods on this socket (proxy.listen_tcp); bound here, so each
        # Pod's NetworkPolicy can name its port before the proxy first serves.
        try:
            self.proxy_socket = listener(host, proxy_port, store.root / "proxy-port")
        except OSError as exc:
            self.transfer.close()
            raise RuntimeUnavailable(
                f"containers.proxy_port: cannot listen on {host}:{proxy_port}: {exc}"
            ) from None
        # A port every Pod's policy leaves out: the Pod's command waits until it no longer answers.
        try:
            self.canary = Canary(host, canary_port, store.root / "canary-port")
        except OSError as exc:
            self.transfer.close()
            self.proxy_socket.close()
            raise RuntimeUnavailable(
                f"containers.canary_port: cannot listen on {host}:{canary_port}: {exc}"
            ) from None
        self.policy_wait_s = policy_wait_s
        advertised_host = self.transfer.advertise.rsplit(":", 1)[0]
        self.proxy_url = f"http://{advertised_host}:{self.proxy_socket.getsockname()[1]}"
        self.canary_address = f"{advertised_host}:{self.canary.port}"
        self.log_dir = state_dir / "logs"
        self.registry = registry
        self.plain_http = [registry.split("/")[0]] if (registry and registry_plain_http) else []
        self.settings = settings
        self._tokens: dict[str, str] = self.transfer.pods()  # Pod name -> its grant's key
        self._podman: Any = None
        self._podman_lock = threading.Lock()  # sprints initializing at once must share one Podman service
        self.package_sources = images.package_sources(settings) if settings else images.PackageSources()
        section = getattr(settings.config, "containers", None) if settings else None
        self.registry_auth = load_credentials(getattr(section, "registry_auth_file", None))
        self.pull_secret = str(getattr(section, "image_pull_secret", None) or "")
        self.stalls = stalls
        self._ours = RecentNames()  # Pods the operator deletes itself: their end is no one's fault
        self.watcher = PodWatcher(kube, namespace, stalls, self._delete, self._ours)
        self.ends = ReportedEnds(self.watcher, self.transfer, kube, namespace)
        self.owner = podsweep.owner_id(store.root / "owner")  # this operator, across its restarts
        self.instance = uuid.uuid4().hex  # this process
        self.marks = podsweep.marks(self.owner, self.instance)
        ports = (self.transfer.port, int(self.proxy_socket.getsockname()[1]))
        self.fences = Fences(kube, namespace, self.transfer.host, ports, advertised_host, self.marks)
        self.pool = podpool.WarmPods(self, warm_gate_pods)

    @classmethod
    def connect(cls, settings: Settings) -> PodsRuntime:
        section = getattr(settings.config, "containers", None)
        host = getattr(section, "transfer_address", None)
        if not host:
            raise RuntimeUnavailable(
                "containers.transfer_address: set the address task Pods reach the operator on "
                "(on the local cluster, the host's node-bridge address)"
            )
        kube = Kube.from_kubeconfig(settings.env.get("KUBECONFIG"))
        namespace = str(getattr(section, "pods_namespace", None) or "default")
        listen = getattr(section, "transfer_listen", None)
        plain = bool(getattr(section, "registry_plain_http", False))
        proxy_port = int(getattr(section, "proxy_port", 0) or 0)
        canary_port = int(getattr(section, "canary_port", 0) or 0)
        policy_wait_s = float(getattr(section, "network_policy_wait", 60))
        warm = int(getattr(section, "warm_gate_pods", 0) or 0)
        stalls = podstatus.StallPolicy(
            float(getattr(section, "image_pull_grace", 60)),
            float(getattr(section, "unschedulable_report_after", 120)),
        )
        try:
            runtime = cls(
                kube, namespace, host, settings.state_dir, getattr(section, "registry", None), settings,
                listen, plain, proxy_port, stalls, canary_port=canary_port, policy_wait_s=policy_wait_s,
                warm_gate_pods=warm,
            )  # fmt: skip
        except RuntimeUnavailable:
            kube.close()
            raise
        except OSError as exc:
            kube.close()
            field = "transfer_listen" if listen else "transfer_address"
            raise RuntimeUnavailable(
                f"containers.{field}: cannot listen on {listen or host}: {exc}"
            ) from None
        problems = runtime.check()
        if problems:
            runtime.close()
            raise RuntimeUnavailable("the pods runtime is not usable: " + " ".join(problems))
        return runtime

    def check(self) -> list[str]:
        problems = []
        if not self.registry:
            problems.append("containers.registry: set the registry the nodes pull sprint images from.")
        try:
            self.kube.list_pods(self.namespace, f"{LABEL_ROLE}=task")
        except KubeError as exc:
            problems.append(f"containers.pods_namespace: cannot list Pods in {self.namespace} ({exc}).")
        return problems

    def close(self) -> None:
        """Wait (up to UNFENCE_AT_CLOSE_S) for the removed Pods to go, so their policies are deleted by
        this operator and not left to their Tasks' deletion; then close the endpoints."""
        self.pool.close()
        self.fences.wait(UNFENCE_AT_CLOSE_S)
        self.transfer.close()
        self.proxy_socket.close()
        self.canary.close()
        if self._podman is not None:
            self._podman.close()
        self.kube.close()

    def prune_oneshots(self) -> list[str]:
        """The start-up sweep (podsweep.py): the one-shot Pods an earlier process of this operator left,
        and the NetworkPolicies and Secrets whose Pod is gone; the names removed."""
        return podsweep.sweep(self.kube, self.namespace, self.fences, self.owner, self.instance, self._delete)

    # -- images --------------------------------------------------------------------------------------

    def ensure_sprint_image(
        self,
        base_image: str,
        dependencies: Sequence[str],
        environment: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> ImageResult:
        """The image by digest: the base as it is when nothing must be baked in, else assembled in
        containers.registry, its packages installed by a build Pod (`podimages`)."""
        if not self.registry:
            raise RuntimeUnavailable(
                "containers.registry: the pods runtime needs a registry its nodes pull from"
            )
        return podimages.sprint_image(self, base_image, dependencies, environment, labels, self._builder)

    def _builder(self) -> Any:
        """The Podman runtime images are built with, connected once: two threads connecting at once each
        started a Podman service on the same socket, and one removed the socket the other was using."""
        with self._podman_lock:
            if self._podman is None:
                if self.settings is None:
                    raise RuntimeUnavailable("building images needs the operator's settings (Podman)")
                from .podman import PodmanRuntime

                self._podman = PodmanRuntime.connect(self.settings, verify=False)
            return self._podman

    # -- tasks -----------------------------------------------------------------------------------------

    def start_task(self, spec: TaskRunSpec) -> RunHandle:
        files = [m for m in spec.extra_mounts if not m.source.is_dir()]
        if files or any(not m.read_only for m in spec.extra_mounts):
            raise TaskStartFailed(
                "the pods runtime copies read-only directories into a Pod, nothing else "
                f"(task {spec.task_id}: {', '.join(str(m.source) for m in spec.extra_mounts)})"
            )
        name = container_name(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)
        labels = task_labels(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)
        labels[podnet.LABEL_POD] = name
        results = {"workspace": spec.workspace, "artifacts": spec.artifacts}
        mounts = [m.source for m in spec.extra_mounts]
        token = self.transfer.grant(spec.workspace, results, mounts=mounts, pod=name)
        owners = podnet.owner_reference(spec.owner, self.namespace)
        run = podspec.PodRun(
            name, self.namespace, spec.image, spec.command, self.transfer.url(token), labels,
            spec.limits, spec.timeout_s, spec.environment, upload=True,
            mounts=[m.target for m in spec.extra_mounts], secret=name if spec.secrets else "",
            secret_keys=sorted(spec.secrets), owners=owners, scheduling=spec.scheduling,
            canary=self.canary_address, policy_wait_s=self.policy_wait_s, pull_secret=self.pull_secret,
        )  # fmt: skip
        self._ours.discard(name)
        try:
            self.fences.attach(name, labels, spec.secrets, owners)
            pod, created = self.kube.create_pod(self.namespace, podspec.manifest(run))
        except KubeError as exc:
            self.transfer.revoke(token)
            self.fences.detach(name)
            message = f"cannot create Pod {name} from {spec.image}: {exc}"
            if podstatus.create_refusal_is_final(exc.status, str(exc)):
                raise PodRejected(message) from None
            raise TaskStartFailed(message) from None
        if not created:
            self.transfer.revoke(token)
            found = (pod.get("metadata") or {}).get("labels") or {}
            if found != {**found, **labels}:
                raise TaskStartFailed(f"Pod {name} exists but is not this task attempt; delete it")
        else:
            stale = self._tokens.get(name)  # a grant for an earlier Pod of this name that is gone
            if stale:
                self.transfer.revoke_key(stale)
            self._tokens[name] = key_of(token)
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        key = podpool.key_for(spec.owner, spec.image, spec.limits, spec.timeout_s, spec.scheduling)
        if spec.gated and self.pool.size and key is not None:  # its gate's Pod starts while it runs
            self.pool.fill(key, podnet.sprint_owner(spec.owner, self.namespace))
        return RunHandle(
            name, uid, spec.sprint_id, spec.task_id, spec.attempt, self._log(name), None, adopted=not created
        )

    def wait(self, handle: RunHandle, timeout_s: float) -> RunOutcome:
        """Watch the Pod until the kubelet reports it ended (podstatus.verdict); end it early when it is
        stuck (an image that cannot be pulled past the grace: podstatus.stall_action); past its deadline
        plus slack (never started), delete it."""
        deadline = time.monotonic() + timeout_s + self.stalls.pending_slack_s
        key = self._tokens.get(handle.name) if handle.task_id else None
        if key is None:
            verdict, pod = self.watcher.watch(handle.name, deadline)
        else:
            verdict, pod = self.ends.watch(handle.name, key, deadline)
        log_path = self._save_logs(handle.name, pod)
        if verdict.infrastructure:  # the Pod may be stuck terminating on a lost node: not waited for
            self._delete(handle.name, grace_s=0)
        exit_code, reason = verdict.exit_code, verdict.reason
        if handle.task_id and verdict.health == Health.EXITED and exit_code is not None:
            missing = self._result_problem(handle.name)
            if missing:
                exit_code, reason = None, missing
        return RunOutcome(
            exit_code,
            verdict.health,
            podstatus.parse_time(verdict.started_at),
            podstatus.parse_time(verdict.finished_at),
            log_path,
            reason,
            infrastructure=verdict.infrastructure,
        )

    def notice(self, name: str) -> str | None:
        """What the Task should show about its waiting Pod now (podwatch.PodWatcher.notice)."""
        return self.watcher.notice(name)

    def _delete(self, name: str, grace_s: int = REMOVE_GRACE_S) -> None:
        self._ours.add(name)
        self.kube.delete_pod(self.namespace, name, grace_s=grace_s)

    def _result_problem(self, name: str) -> str:
        """Why the task's result did not (safely) arrive, or ""."""
        key = self._tokens.get(name)
        grant = self.transfer.grant_by_key(key) if key else None
        if grant is None:
            return "the task's result cannot come back (the Pod was adopted and its grant is gone)"
        if not grant.fetched:
            return podspec.FETCH_FAILED
        if grant.refused:
            refused = "; ".join(p for problems in grant.refused.values() for p in problems)
            return f"the result tree was refused: {refused}"
        if not grant.received.get("workspace", "").startswith("ok"):
            return "the task's workspace did not come back"
        return ""

    def refused(self, name: str) -> dict[str, list[str]]:
        key = self._tokens.get(name)
        grant = self.transfer.grant_by_key(key) if key else None
        return dict(grant.refused) if grant else {}

    def _save_logs(self, name: str, pod: dict[str, Any] | None) -> Path:
        text = self._log(name)
        if pod is not None:
            text.write_text(self._pod_log(name, "main"))
        elif not text.exists():
            text.write_text("")
        # The kubelet keeps one stream: the runner's NAME.stdout (results, usage) is the whole log here.
        text.with_suffix(".stdout").write_text(text.read_text(errors="replace"))
        return text

    def _pod_log(self, name: str, container: str) -> str:
        try:
            return self.kube.pod_log(self.namespace, name, container)
        except KubeError:  # e.g. the kubelet of a lost node: the verdict matters more than the log
            return ""

    def stop(self, handle_or_name: RunHandle | str, grace_s: float = 5) -> None:
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        self._ours.add(name)
        self.kube.delete_pod(self.namespace, name, grace_s=int(grace_s))

    def remove(self, handle_or_name: RunHandle | str) -> None:
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        self._delete(name)
        self.fences.detach(name, policy=False)
        self.fences.unfence(name)
        key = self._tokens.pop(name, None)
        if key:
            self.transfer.revoke_key(key)

    def read_output(self, handle: RunHandle, streams: tuple[str, ...] = ("stdout",)) -> str:
        return self.kube.pod_log(self.namespace, handle.name, "main")

    def status(self, name: str) -> ContainerInfo | None:
        pod = self.kube.get_pod(self.namespace, name)
        return None if pod is None else podstatus.info(pod)

    def find_task_containers(self, sprint_id: str | None = None, tenant: str = "") -> list[ContainerInfo]:
        selector = f"{LABEL_ROLE}=task" + (f",{LABEL_SPRINT}={sprint_id}" if sprint_id else "")
        selector += f",{LABEL_TENANT}={tenant}" if tenant else ""
        return sorted(
            (podstatus.info(p) for p in self.kube.list_pods(self.namespace, selector)), key=lambda i: i.name
        )

    # -- one-shot Pods (quality gates, integration checks) ---------------------------------------------

    def run_oneshot(
        self,
        image: str,
        command: Sequence[str],
        workdir_mount: Path | None,
        timeout_s: float,
        limits: Limits,
        owner: Mapping[str, Any] | None = None,
        scheduling: Scheduling = ANYWHERE,
    ) -> OneshotResult:
        """Run `command` on a copy of `workdir_mount` in a Pod (a warm one when the pool has one waiting:
        podpool.py); nothing comes back but its exit and logs."""
        source = workdir_mount if workdir_mount is not None else self.log_dir / "empty"
        source.mkdir(parents=True, exist_ok=True)
        text = podpool.shell_command(command)
        key = podpool.key_for(owner, image, limits, timeout_s, scheduling) if self.pool.size else None
        if key is not None and text is not None and workdir_mount is not None:
            warm = self.pool.take(key)
            self.pool.fill(key, podnet.sprint_owner(owner, self.namespace))  # for the next gate
            result = podoneshot.run_warm(self, warm, text, source, timeout_s) if warm else None
            if result is not None:
                return result
        token = self.transfer.grant(source, {})
        return podoneshot.run_once(self, image, command, token, timeout_s, limits, owner, scheduling)

    def release_warm(self, sprint: str) -> None:
        self.pool.release(sprint)

    def _log(self, name: str) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}.txt"
