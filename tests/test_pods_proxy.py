"""Task Pods and the metering proxy on real nodes: the Pod holds only its attempt's credential (from a
Secret), the stand-in upstream sees the real key, usage is exact; the Pod's NetworkPolicy lets it reach
the operator's transfer and proxy ports and nothing else; its Task owns the Pod, Secret and policy."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from _e2e import wait_for
from _node import build_busybox_image, install_crds, pod, pods_operator, pods_runtime, two_nodes
from _proxy import REAL_KEY, counts, expected_usage
from _standin_anthropic import AnthropicStandIn
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.proxy import MeteringProxy, ProxyLimits, TaskBudget
from sprint_orchestrator.proxy.tcp import key_secrets
from sprint_orchestrator.runtime import Limits, TaskRunSpec
from sprint_orchestrator.runtime.pods import PodsRuntime
from test_agent_e2e import agent_image  # noqa: F401 (a fixture)
from test_node import HostListener, running

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(1200)]
SMALL = Limits(cpus=0.5, memory_bytes=64 << 20)
T = TypeVar("T")
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
MESSAGE = json.dumps(
    {"model": "claude-test-1", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
)
# Calls the model as an agent CLI would: its key and base URL from the env the Pod was given.
CALL_MODEL = (
    'wget -q -O model.json --header "x-api-key: $ANTHROPIC_API_KEY" --header "anthropic-version: 2023-06-01" '
    f"--post-data '{MESSAGE}' \"$ANTHROPIC_BASE_URL/v1/messages\" "
    '2>model.err; echo "model: $?"; cat model.err'
)

# "open" when a TCP peer answers anything (a greeting, or the apiserver's 400 to plain HTTP on its TLS port).
PROBE = (
    'printf \'GET / HTTP/1.0\\r\\n\\r\\n\' | nc -w 3 "$1" "$2" 2>/dev/null | grep -q . '
    "&& echo open || echo closed"
)


class Loop:
    """An event loop in a thread for the proxy and the stand-in; the test waits synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@dataclasses.dataclass
class Metering:
    loop: Loop
    standin: AnthropicStandIn
    proxy: MeteringProxy
    base: str


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("podsproxy")) as local:
        yield local


@pytest.fixture(scope="module")
def image(nodes: LocalCluster) -> str:
    return str(
        push_image(build_busybox_image(), nodes.registry, f"pods-proxy/busybox:{uuid.uuid4().hex[:8]}")
    )


@pytest.fixture(scope="module")
def runtime(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodsRuntime]:
    with pods_runtime(nodes, tmp_path_factory.mktemp("state"), "pp") as pods:
        yield pods


@pytest.fixture(scope="module")
def metering(runtime: PodsRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metering]:
    """The operator's metering proxy on the runtime's TCP socket, its upstream the Anthropic stand-in."""
    loop = Loop()
    standin = AnthropicStandIn()
    loop.run(standin.start())
    proxy = MeteringProxy({"anthropic": standin.url}, {"anthropic": REAL_KEY}, ProxyLimits(),
                          run_dir=tmp_path_factory.mktemp("run"))  # fmt: skip
    loop.run(proxy.start())
    base = loop.run(proxy.listen_tcp(runtime.proxy_socket))
    try:
        yield Metering(loop, standin, proxy, base)
    finally:
        loop.run(proxy.stop())
        loop.run(standin.stop())
        loop.close()


def _spec(tmp_path: Path, image: str, script: str, **changes: Any) -> TaskRunSpec:
    ws, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    ws.mkdir(exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    spec = TaskRunSpec(sprint_id="pp-1", task_id=f"t{uuid.uuid4().hex[:6]}", attempt=1, image=image,
                       command=["/bin/sh", "-c", script], workspace=ws, artifacts=artifacts, limits=SMALL,
                       timeout_s=300)  # fmt: skip
    return dataclasses.replace(spec, **changes)


def _get(nodes: LocalCluster, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    out = nodes.kubectl("-n", ns, "get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def _cluster_text(nodes: LocalCluster, ns: str) -> str:
    """Everything the cluster shows about the namespace's Pods: specs, statuses and Events."""
    return str(nodes.kubectl("-n", ns, "get", "pods,events", "-o", "yaml"))


def test_a_task_pod_calls_the_model_with_its_credential_and_reaches_nothing_but_the_operator(
    tmp_path: Path, image: str, runtime: PodsRuntime, metering: Metering, nodes: LocalCluster
) -> None:
    node_set = nodes.node_set()
    assert node_set is not None
    host = node_set.slot.host_ip
    ns = runtime.namespace
    listener = HostListener(host)
    server = f"server-{uuid.uuid4().hex[:6]}"
    serve = "while :; do echo pod-says-hi | nc -l -p 8080; done"
    nodes.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(
        pod(server, image, serve, node="node2", pull="IfNotPresent", security=RESTRICTED)))  # fmt: skip
    try:
        server_ip = running(nodes, ns, server)["status"]["podIP"]
        # Without the task's policy, a Pod reaches the apiserver and the host's other ports.
        control = nodes.kubectl("-n", ns, "exec", server, "--", "sh", "-c",
                                f"ok() {{ {PROBE}; }}; ok $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT; "
                                f"ok {host} {listener.port}")  # fmt: skip
        assert control.split() == ["open", "open"], control

        credential = metering.proxy.open_task_credential("pp-1", "model", 1, TaskBudget())
        script = (
            f"ok() {{ {PROBE}; }}; "
            # A CNI programs a new Pod's rules as it sees the Pod: wait (bounded) until they hold.
            f'i=0; while [ "$(ok {host} {listener.port})" = open ] && [ $i -lt 60 ]; '
            "do i=$((i+1)); sleep 1; done; "
            f'echo "host-other-port: $(ok {host} {listener.port})"; '
            f'echo "other-pod: $(ok {server_ip} 8080)"; '
            'echo "apiserver: $(ok $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT)"; '
            f"{CALL_MODEL}"
        )
        spec = _spec(tmp_path, image, script, task_id="model", secrets=key_secrets(credential),
                     environment={"ANTHROPIC_BASE_URL": f"{metering.base}/anthropic"})  # fmt: skip
        handle = runtime.start_task(spec)
        policy = _get(nodes, ns, "networkpolicy", handle.name)
        secret = _get(nodes, ns, "secret", handle.name)
        seen = nodes.kubectl("-n", ns, "get", "pod", handle.name, "-o", "yaml")
        outcome = runtime.wait(handle, spec.timeout_s)
        log = outcome.log_path.read_text()
        seen += _cluster_text(nodes, ns)
        runtime.remove(handle)
    finally:
        listener.close()
        nodes.kubectl("-n", ns, "delete", "pod", server, "--wait=false")
    metering.proxy.close_task_credential("pp-1", "model", 1)

    assert outcome.succeeded, (outcome, log)
    assert "host-other-port: closed" in log and "other-pod: closed" in log and "apiserver: closed" in log, log
    assert "model: 0" in log, log
    answer = json.loads((spec.workspace / "model.json").read_text())  # came back over the transfer port
    assert answer["type"] == "message" and answer["usage"]["output_tokens"] > 0
    assert metering.standin.seen_keys == [REAL_KEY]  # the proxy put the real key in
    assert counts(metering.proxy.usage_for("pp-1", "model", 1)) == counts(
        expected_usage(metering.standin.served)
    )

    assert policy is not None and secret is not None
    assert policy["spec"]["podSelector"]["matchLabels"] == {"sprintorchestrator.dev/pod": handle.name}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and not policy["spec"].get("ingress")
    [egress] = policy["spec"]["egress"]
    assert egress["to"] == [{"ipBlock": {"cidr": f"{host}/32"}}]
    assert sorted(p["port"] for p in egress["ports"]) == sorted(
        [runtime.transfer.port, runtime.proxy_socket.getsockname()[1]]
    )
    assert sorted(secret["data"]) == ["ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"]
    assert "secretKeyRef" in seen and "ANTHROPIC_API_KEY" in seen
    for text in (seen, log):
        assert credential not in text and REAL_KEY not in text
    wait_for(lambda: not _get(nodes, ns, "secret", handle.name) and not _get(nodes, ns, "networkpolicy",
             handle.name), 60, "the Pod's Secret and NetworkPolicy deleted with it")  # fmt: skip


def test_a_credential_reused_after_its_attempt_ended_is_refused_and_nothing_goes_upstream(
    tmp_path: Path, image: str, runtime: PodsRuntime, metering: Metering
) -> None:
    credential = metering.proxy.open_task_credential("pp-1", "reuse", 1, TaskBudget())
    metering.proxy.close_task_credential("pp-1", "reuse", 1)
    before = len(metering.standin.served)
    spec = _spec(tmp_path, image, CALL_MODEL, task_id="reuse", secrets=key_secrets(credential),
                 environment={"ANTHROPIC_BASE_URL": f"{metering.base}/anthropic"})  # fmt: skip
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    log = outcome.log_path.read_text()
    assert outcome.succeeded, (outcome, log)
    assert "model: 1" in log and "401" in log, log  # the proxy's answer to a wrong API key
    assert len(metering.standin.served) == before
    assert counts(metering.proxy.usage_for("pp-1", "reuse", 1))["total_tokens"] == 0


def test_deleting_a_task_deletes_its_task_pod_and_gate_pod_with_their_secret_and_network_policies(
    tmp_path: Path, image: str, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    ns = runtime.namespace
    install_crds(nodes)
    name = f"owned-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"sprintRef": "s", "sprintId": "pp-1", "taskId": "owned", "title": "owned"},
    }
    nodes.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))
    task = _get(nodes, ns, "stask", name) or {}
    spec = _spec(tmp_path, image, "sleep 600", task_id="owned", secrets={"SOME_SECRET": "x"}, owner=task)
    handle = runtime.start_task(spec)
    gate: list[Any] = []  # the gate runs until its Pod is deleted (by the garbage collector)
    gating = threading.Thread(
        target=lambda: gate.append(
            runtime.run_oneshot(image, ["/bin/sh", "-c", "sleep 600"], spec.workspace, 600, SMALL, task)
        )
    )
    gating.start()
    try:
        selector = "sprintorchestrator.dev/role=oneshot"
        gate_pod = wait_for(
            lambda: (
                nodes.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "name").strip().split("/")[-1]
            ),
            120,
            "the gate Pod created",
        )
        owner = {"kind": "Task", "name": name, "uid": task["metadata"]["uid"]}
        owned = [("pod", handle.name), ("secret", handle.name), ("networkpolicy", handle.name)]
        owned += [("pod", gate_pod), ("networkpolicy", gate_pod)]
        for kind, obj_name in owned:
            obj = _get(nodes, ns, kind, obj_name) or {}
            refs = obj.get("metadata", {}).get("ownerReferences") or []
            assert [{k: r[k] for k in owner} for r in refs] == [owner], (kind, obj.get("metadata"))
        nodes.kubectl("-n", ns, "delete", "stask", name, "--wait=false")
        wait_for(
            lambda: all(_get(nodes, ns, kind, obj_name) is None for kind, obj_name in owned),
            120,
            "the garbage collector deleted the Task's Pods, Secret and NetworkPolicies",
        )
        gating.join(300)
        # The gate ended with its Pod: killed (137) or gone (None) as the runtime last saw it, never passed.
        assert gate and gate[0].exit_code in (None, 137) and not gate[0].timed_out, gate
    finally:
        runtime.remove(handle)
        gating.join(300)


class PodWatcher:
    """Polls the namespace's task Pods and Secrets while the sprint runs: every Pod document seen (as
    YAML) and the credentials the Secrets held (decoded), to check where they did not go."""

    def __init__(self, nodes: LocalCluster, ns: str) -> None:
        self.nodes, self.ns = nodes, ns
        self.pods: dict[str, str] = {}
        self.specs: dict[str, dict[str, Any]] = {}
        self.credentials: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _poll(self) -> None:
        selector = "sprintorchestrator.dev/role=task"
        while not self._stop.wait(0.5):
            try:
                pods = json.loads(
                    self.nodes.kubectl("-n", self.ns, "get", "pods", "-l", selector, "-o", "json")
                )
                secrets = json.loads(
                    self.nodes.kubectl("-n", self.ns, "get", "secrets", "-l", selector, "-o", "json")
                )
                for item in pods["items"]:
                    name = item["metadata"]["name"]
                    self.specs[name] = item
                    self.pods[name] = self.nodes.kubectl("-n", self.ns, "get", "pod", name, "-o", "yaml")
            except Exception:  # a Pod deleted between the list and the get: poll again
                continue
            for item in secrets["items"]:
                value = (item.get("data") or {}).get("ANTHROPIC_API_KEY")
                if value:
                    self.credentials.add(base64.b64decode(value).decode())


@pytest.mark.timeout(2400)
def test_a_claude_code_team_task_runs_as_a_pod_with_its_attempts_credential_and_is_metered_exactly(
    tmp_path: Path,
    nodes: LocalCluster,
    agent_image: str,  # noqa: F811 (the fixture)
) -> None:
    """The operator as a process on the pods runtime, the REAL Claude Code CLI in a task Pod on a node,
    the Anthropic stand-in upstream. The Pod holds only its attempt's credential; the stand-in sees the
    real key; the Task's tokens are exactly what the stand-in served; once the attempt ended its
    credential is refused; no key is in any Pod spec, Pod log, Event or operator log."""
    from _e2e import apply as apply_manifest
    from _e2e import operator_process
    from test_agent_e2e import SPRINT, ThreadedStandIn, agent_sprint
    from test_lifecycle_e2e import by_id, git, seed_repository, wait_terminal

    node_set = nodes.node_set()
    assert node_set is not None
    ns, config = pods_operator(nodes, tmp_path, "agent")
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "operator.log"
    with ThreadedStandIn() as standin:
        env = {"SPRINT_ORCHESTRATOR_CONFIG": str(config), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
               "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        with (
            PodWatcher(nodes, ns) as watcher,
            operator_process(nodes, ns, tmp_path / "state", log, **env),
        ):
            apply_manifest(nodes, ns, agent_sprint(repo, agent_image))
            status = wait_terminal(nodes, ns, SPRINT, timeout=1200)
            served = list(standin.served)
            seen_keys = list(standin.seen_keys)
            assert watcher.specs, ("no task Pod was created", status, by_id(nodes, ns, SPRINT))
            # The attempt ended: its credential, replayed against the proxy, is refused and goes nowhere.
            main = next(iter(watcher.specs.values()))["spec"]["containers"][0]
            env = {e["name"]: e for e in main["env"]}
            base = env["ANTHROPIC_BASE_URL"]["value"]
            replayed = [_replay(base, credential) for credential in watcher.credentials]
            assert len(standin.served) == len(served)
        events = nodes.kubectl("-n", ns, "get", "events", "-o", "yaml")
    task = by_id(nodes, ns, SPRINT)["greet"]
    assert status["phase"] == "Completed", (status.get("message"), task.get("reason"), task.get("error"))
    assert git("-C", str(repo), "show", "main:OUTPUT.md").startswith("done: ")

    expected = expected_usage(served)
    tokens = task["tokens"]
    assert len(served) >= 3 and not expected.partial
    assert (tokens["source"], tokens["partial"]) == ("proxy", False)
    got = [tokens[k] for k in ("actual", "input", "output", "cacheRead", "cacheCreation")]
    assert got == [expected.total_tokens, expected.input_tokens, expected.output_tokens,
                   expected.cache_read_tokens, expected.cache_creation_tokens]  # fmt: skip
    assert tokens["agentReported"] == expected.total_tokens
    assert seen_keys and all(key == REAL_KEY for key in seen_keys)

    assert watcher.pods and len(watcher.credentials) == 1, (list(watcher.pods), len(watcher.credentials))
    [credential] = watcher.credentials
    assert replayed == [401]
    assert env["ANTHROPIC_API_KEY"] == {
        "name": "ANTHROPIC_API_KEY",
        "valueFrom": {"secretKeyRef": {"key": "ANTHROPIC_API_KEY", "name": next(iter(watcher.specs))}},
    }
    assert base.startswith(f"http://{node_set.slot.host_ip}:") and "claude" in main["command"]
    owners = next(iter(watcher.specs.values()))["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("Task", f"{SPRINT}-greet")], owners
    texts = [*watcher.pods.values(), events, log.read_text()]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    for text in texts:
        assert REAL_KEY not in text and credential not in text
    leftovers = ("-n", ns, "get", "secrets,networkpolicies", "-l", "sprintorchestrator.dev/role=task")
    wait_for(lambda: not nodes.kubectl(*leftovers).strip(), 60, "the Secrets and policies gone")


def _replay(base: str, credential: str) -> int:
    """POST a message to the proxy with `credential`, as the agent CLI did; the HTTP status."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{base}/v1/messages", data=MESSAGE.encode(), method="POST",
        headers={"x-api-key": credential, "anthropic-version": "2023-06-01"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        assert json.loads(exc.read())["error"]["type"] == "authentication_error"
        return int(exc.code)


@pytest.mark.timeout(2400)
def test_an_agent_pod_outlives_its_operator_and_the_next_one_resumes_its_credential(
    tmp_path: Path,
    nodes: LocalCluster,
    agent_image: str,  # noqa: F811 (the fixture)
) -> None:
    """The REAL Claude Code CLI in a task Pod; the operator is stopped (a rollout's SIGTERM) after the
    CLI's first model reply, while the Pod runs on. The next operator adopts the Pod, listens on the
    same proxy port and holds the same credential again: the CLI's later requests are accepted and
    metered, the attempt finishes as attempt 1, and nothing on disk holds the credential."""
    from _e2e import apply as apply_manifest
    from _e2e import start_operator, stop_operator
    from test_agent_e2e import SPRINT, ThreadedStandIn, agent_sprint
    from test_lifecycle_e2e import by_id, git, seed_repository, wait_terminal

    ns, config = pods_operator(nodes, tmp_path, "agent")
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    state, log = tmp_path / "state", tmp_path / "operator.log"
    with ThreadedStandIn() as standin, PodWatcher(nodes, ns) as watcher:
        standin.faults.block_delay_s = 1.0  # each reply takes seconds: the Pod is mid-run at the stop
        env = {"SPRINT_ORCHESTRATOR_CONFIG": str(config), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
               "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        first = start_operator(nodes, ns, state, log, **env)
        try:
            apply_manifest(nodes, ns, agent_sprint(repo, agent_image))
            wait_for(lambda: len(standin.served) >= 1, 900, "the CLI's first model reply")
        finally:
            stop_operator(first)
        before = len(standin.served)
        second = start_operator(nodes, ns, state, log, **env)
        try:
            status = wait_terminal(nodes, ns, SPRINT, timeout=1200)
        finally:
            stop_operator(second)
        served, seen_keys = list(standin.served), list(standin.seen_keys)
    task = by_id(nodes, ns, SPRINT)["greet"]
    assert status["phase"] == "Completed", (status.get("message"), task.get("reason"), task.get("error"))
    assert git("-C", str(repo), "show", "main:OUTPUT.md").startswith("done: ")
    assert task["attempt"] == 1 and len(watcher.specs) == 1, (task["attempt"], list(watcher.specs))
    assert len(watcher.credentials) == 1  # the Secret was written once, with the resumed credential
    assert len(served) > before, "no model request of the Pod went through after the restart"
    assert seen_keys and all(key == REAL_KEY for key in seen_keys)
    tokens = task["tokens"]
    assert tokens["source"] == "proxy"
    assert tokens["actual"] >= expected_usage(served[:before]).total_tokens > 0
    [credential] = watcher.credentials
    for path in state.rglob("*"):
        if path.is_file():
            assert credential.encode() not in path.read_bytes() and REAL_KEY.encode() not in path.read_bytes()
    assert not list((state / "run" / "credentials" / "attempts").glob("*"))  # revoked for good at the end


@pytest.mark.timeout(2400)
def test_changes_requested_on_pods_resume_the_claude_code_session_with_the_review(
    tmp_path: Path,
    nodes: LocalCluster,
    agent_image: str,  # noqa: F811 (the fixture)
) -> None:
    """Review on the Pods runtime: the REAL Claude Code CLI in a task Pod writes a file outside its
    task's files, so the task waits in Review; a reviewer requests changes; attempt 2's Pod runs
    `claude --resume <attempt 1's session>` with the review as its prompt (the session travelled back
    with the workspace and was kept in the operator's state), and the stand-in receives the earlier
    conversation followed by the review. The proxy metered both attempts exactly."""
    from _e2e import apply as apply_manifest
    from _e2e import operator_env, operator_process
    from test_agent_e2e import SPRINT, ThreadedStandIn, agent_sprint
    from test_lifecycle_e2e import seed_repository
    from test_review_e2e import sprintctl
    from test_review_resume_e2e import COMMENT, texts

    ns, config = pods_operator(nodes, tmp_path, "review")
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    manifest = agent_sprint(repo, agent_image)
    manifest["spec"]["tasks"][0]["filesToModify"] = ["GREETING.md"]  # OUTPUT.md: out of scope, Review
    state = tmp_path / "state"

    def in_review(attempt: int) -> dict[str, Any]:
        from test_lifecycle_e2e import by_id

        def seen() -> dict[str, Any] | None:
            task = by_id(nodes, ns, SPRINT).get("greet", {})
            return task if task.get("phase") == "Review" and task.get("attempt") == attempt else None

        return dict(wait_for(seen, 1200, f"task greet in Review on attempt {attempt}"))

    with ThreadedStandIn() as standin, PodWatcher(nodes, ns) as watcher:
        settings = {"SPRINT_ORCHESTRATOR_CONFIG": str(config), "ANTHROPIC_API_KEY": REAL_KEY,
                    "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url}  # fmt: skip
        env = {**operator_env(nodes, state), **settings}
        with operator_process(nodes, ns, state, tmp_path / "operator.log", **settings):
            apply_manifest(nodes, ns, manifest)
            first = in_review(1)
            rounds_1 = len(standin.requests)
            session = first["session"]
            sprintctl(
                env, "request-changes", SPRINT, "greet", "-n", ns, "--by", "alice",
                "-m", "OUTPUT.md is fine, but the greeting is short.", "-c", f"OUTPUT.md:1={COMMENT}",
            )  # fmt: skip
            second = in_review(2)
            requests, served = list(standin.requests), list(standin.served)
        specs = dict(watcher.specs)

    assert (session["cli"], session["attempt"]) == ("claude-code", 1), first
    assert {k: second["session"][k] for k in ("cli", "id", "attempt", "resumedFrom")} == {
        "cli": "claude-code", "id": session["id"], "attempt": 2, "resumedFrom": 1
    }  # fmt: skip
    commands = [spec["spec"]["containers"][0]["command"] for spec in specs.values()]
    resumed = [c for c in commands if "--resume" in c]
    assert len(commands) == 2 and len(resumed) == 1, commands
    assert resumed[0][resumed[0].index("--resume") + 1] == session["id"]
    assert COMMENT in resumed[0][resumed[0].index("-p") + 1]

    assert rounds_1 >= 3 and len(requests) > rounds_1
    earlier = [texts(m) for m in requests[rounds_1 - 1]["messages"]]
    now = [texts(m) for m in requests[rounds_1]["messages"]]
    assert now[: len(earlier)] == earlier, "attempt 2 did not carry attempt 1's conversation"
    assert len(now) == len(earlier) + 2 and any(COMMENT in t for t in now[-1]), now[len(earlier) :]

    expected = expected_usage(served)
    by_attempt = second.get("tokensByAttempt") or {}
    assert by_attempt.get("1") and second["tokens"]["source"] == "proxy"
    assert by_attempt["1"] + second["tokens"]["actual"] == expected.total_tokens
    # the CLI reports its whole session; the Task shows what it said for this attempt alone
    assert second["tokens"]["agentReported"] == second["tokens"]["actual"], second["tokens"]
    assert second["session"]["reportedTokens"] == by_attempt["1"] + second["tokens"]["actual"]
    kept = state / "sessions" / ns / SPRINT / "greet" / "transcript.jsonl"
    assert session["id"] in kept.read_text() and COMMENT in kept.read_text()
    assert second["changedFiles"] == ["OUTPUT.md"], second
