"""The pods runtime on real nodes: gates and tasks as Pods, workspaces in and out over the operator's
transfer endpoint (no disk shared with the nodes), hostile result trees refused, OOM from the kubelet."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _e2e import wait_for
from _node import build_busybox_image, pods_operator, pods_runtime, two_nodes
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.runtime import ANYWHERE, Health, Limits, Mount, TaskRunSpec, podnet, podpool
from sprint_orchestrator.runtime.pods import PodsRuntime
from test_node import HostListener

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(900)]

SMALL = Limits(cpus=0.5, memory_bytes=64 << 20)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("pods")) as local:
        yield local


@pytest.fixture(scope="module")
def image(nodes: LocalCluster) -> str:
    """The busybox test image, in the cluster's registry (the nodes pull it)."""
    return str(push_image(build_busybox_image(), nodes.registry, f"pods-test/busybox:{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="module")
def runtime(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodsRuntime]:
    with pods_runtime(nodes, tmp_path_factory.mktemp("state"), "pods") as pods:
        yield pods


def _workspace(root: Path, files: dict[str, str]) -> Path:
    ws = root / "ws"
    ws.mkdir()
    (ws / ".git").write_text("gitdir: /host/only/path\n")  # as in a git worktree: must stay, never travel
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    return ws


def _spec(tmp_path: Path, image: str, script: str, ws: Path, limits: Limits = SMALL) -> TaskRunSpec:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    return TaskRunSpec(
        sprint_id="pods-1",
        task_id=f"t{uuid.uuid4().hex[:6]}",
        attempt=1,
        image=image,
        command=["/bin/sh", "-c", script],
        workspace=ws,
        artifacts=artifacts,
        environment={"GREETING": "hello"},
        limits=limits,
        timeout_s=120,
    )


def test_a_gate_pod_runs_on_a_copy_of_the_workspace_and_reports_its_exit_code_and_logs(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    ws = _workspace(tmp_path, {"tests/ok.txt": "pass\n"})
    passed = runtime.run_oneshot(image, ["/bin/sh", "-c", "cat tests/ok.txt; ls -a"], ws, 120, SMALL)
    assert passed.exit_code == 0, passed.log_tail
    assert "pass" in passed.log_tail
    assert ".git" not in passed.log_tail.split()
    failed = runtime.run_oneshot(image, ["/bin/sh", "-c", "echo failing >&2; exit 1"], ws, 120, SMALL)
    assert failed.exit_code == 1
    assert "failing" in failed.log_tail


def test_a_gate_never_sees_the_transfer_url_and_only_the_operator_decides_a_download_was_lost(
    tmp_path: Path, image: str, runtime: PodsRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pod fetches its workspace in its one container: the gate's process has no transfer URL left,
    its exit code 125 (the wrapper's own for a failed download) stays its verdict, and a download that
    failed is told by the operator's endpoint (nothing went out whole), not by the Pod."""
    ws = _workspace(tmp_path, {"tests/ok.txt": "pass\n"})
    look = "cat tests/ok.txt; tr '\\0' '\\n' </proc/1/environ; env; "
    look += "echo pid1=$(tr '\\0' ' ' </proc/1/cmdline)"
    seen = runtime.run_oneshot(image, ["/bin/sh", "-c", look], ws, 120, SMALL)
    assert seen.exit_code == 0, seen.log_tail
    assert "pass" in seen.log_tail and "pid1=/bin/sh -c cat tests/ok.txt" in seen.log_tail
    assert "SO_TRANSFER" not in seen.log_tail and "/t/" not in seen.log_tail
    forge = "echo fetching the workspace failed; exit 125"
    forged = runtime.run_oneshot(image, ["/bin/sh", "-c", forge], ws, 120, SMALL)
    assert forged.exit_code == 125  # the gate failed: not passed off as a lost download
    url = runtime.transfer.url
    monkeypatch.setattr(runtime.transfer, "url", lambda token: url(token) + "-broken")  # its download fails
    lost = runtime.run_oneshot(image, ["/bin/sh", "-c", "exit 0"], ws, 120, SMALL)
    assert lost.exit_code is None and "fetching the workspace failed" in lost.log_tail, lost.log_tail


def test_a_pods_command_starts_only_once_its_network_policy_holds_and_never_without_it(
    tmp_path: Path, image: str, nodes: LocalCluster, runtime: PodsRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CNI programs a new Pod's rules only once it sees the Pod (measured: a host port the policy denies
    answered for the Pod's first 0.5-1.5 s): the wrapper waits until the canary stops answering, so the
    command's very first connection is already held by the policy. A canary the policy lets through (as
    on a CNI that enforces no NetworkPolicy) keeps the command from running at all."""
    node_set = nodes.node_set()
    assert node_set is not None
    listener = HostListener(node_set.slot.host_ip)
    try:
        first = f"nc -w 2 {node_set.slot.host_ip} {listener.port} </dev/null && echo reached || echo held"
        ws = _workspace(tmp_path, {"a.txt": "x\n"})
        held = runtime.run_oneshot(image, ["/bin/sh", "-c", first], ws, 120, SMALL)
        assert held.exit_code == 0 and "held" in held.log_tail and "reached" not in held.log_tail, (
            held.log_tail
        )
        assert listener.accepted == 0
    finally:
        listener.close()
    monkeypatch.setattr(runtime, "canary_address", runtime.transfer.advertise)  # a port the policy allows
    monkeypatch.setattr(runtime, "policy_wait_s", 3)
    (tmp_path / "open").mkdir()
    spec = _spec(tmp_path / "open", image, "echo ran > ran.txt", _workspace(tmp_path / "open", {}))
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    log = outcome.log_path.read_text()
    assert outcome.exit_code is None and "did not take hold in 3 s" in log, (outcome, log)
    assert not (spec.workspace / "ran.txt").exists()


def test_a_task_pod_writes_files_that_come_back_into_the_workspace(
    tmp_path: Path, image: str, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    ws = _workspace(tmp_path, {"keep.txt": "kept\n", "gone.txt": "deleted by the task\n"})
    script = (
        'echo "$GREETING from $(id -u)"; mkdir -p src; echo made > src/new.txt; cat keep.txt >> src/new.txt; '
        "rm gone.txt; echo done > /artifacts/result.txt; cat /opt/team/hello.txt; "
        'touch /opt/team/x 2>/dev/null && exit 9; test -z "$SO_TRANSFER"'
    )
    team = tmp_path / "team"
    (team / "sub").mkdir(parents=True)
    (team / "hello.txt").write_text("team file\n")
    spec = dataclasses.replace(_spec(tmp_path, image, script, ws), extra_mounts=[Mount(team, "/opt/team")])
    handle = runtime.start_task(spec)
    pod = json.loads(nodes.kubectl("-n", runtime.namespace, "get", "pod", handle.name, "-o", "json"))
    assert pod["metadata"]["labels"]["sprintorchestrator.dev/task"] == spec.task_id
    assert pod["spec"]["nodeName"] in ("node1", "node2")
    outcome = runtime.wait(handle, spec.timeout_s)
    log = outcome.log_path.read_text()
    assert outcome.succeeded, (outcome, log)
    assert "hello from 1000" in log
    assert "team file" in log
    assert (ws / "src/new.txt").read_text() == "made\nkept\n"
    assert not (ws / "gone.txt").exists()
    assert (ws / ".git").read_text() == "gitdir: /host/only/path\n"
    assert (spec.artifacts / "result.txt").read_text() == "done\n"
    runtime.remove(handle)
    wait_for(lambda: runtime.status(handle.name) is None, 60, "Pod deleted")


def test_a_task_whose_result_holds_a_symlink_to_etc_passwd_gets_it_refused(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    ws = _workspace(tmp_path, {"keep.txt": "kept\n"})
    spec = _spec(tmp_path, image, "ln -s /etc/passwd pw; echo changed > keep.txt", ws)
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert not outcome.succeeded
    assert "refused" in outcome.reason and "/etc/passwd" in outcome.reason
    assert not (ws / "pw").is_symlink()
    assert (ws / "keep.txt").read_text() == "kept\n"


def test_a_task_that_uploads_its_own_tar_with_an_escaping_path_gets_it_refused(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    """The hostile task reads the token from its wrapper's environment and uploads a crafted tar first."""
    ws = _workspace(tmp_path, {})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../escape", "/abs-escape"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"owned"))
    (ws / "evil.tar").write_bytes(buffer.getvalue())
    script = (
        "url=$(tr '\\0' '\\n' < /proc/$PPID/environ | sed -n 's/^SO_TRANSFER=//p'); "
        "hp=${url#http://}; path=/${hp#*/}/result/workspace; hp=${hp%%/*}; "
        "{ printf 'PUT %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Length: %s\\r\\n\\r\\n' "
        '"$path" "$hp" $(($(wc -c < evil.tar))); cat evil.tar; } | nc -w 30 "${hp%:*}" "${hp##*:}"; exit 0'
    )
    spec = _spec(tmp_path, image, script, ws)
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert not outcome.succeeded
    assert "'..'" in outcome.reason, outcome.reason
    assert not (tmp_path / "escape").exists()
    assert not Path("/abs-escape").exists()
    assert sorted(p.name for p in ws.iterdir()) == [".git", "evil.tar"]


def test_a_task_whose_results_and_exit_0_are_in_is_over_without_waiting_for_its_pod_to_end(
    tmp_path: Path, image: str, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    """The operator stops waiting once the wrapper's last upload reports exit 0 (podend.py): here the
    agent itself sends its result and `?exit=0`, then lives on past the task's timeout. Waiting for the
    kubelet instead would end the attempt timed out; the result is what was uploaded, as always. What
    lives on (ignoring SIGTERM) keeps trying a host port its policy denies: the Pod is removed while it
    runs, and its NetworkPolicy must hold until the Pod is gone (0 connections)."""
    node_set = nodes.node_set()
    assert node_set is not None
    listener = HostListener(node_set.slot.host_ip)
    probe = f"nc -w 1 {node_set.slot.host_ip} {listener.port} </dev/null"
    ws = _workspace(tmp_path, {})
    put = (
        "put() { hp=${url#http://}; path=/${hp#*/}/result/$1; hp=${hp%%/*}; f=/tmp/up-$3.tar; "
        "tar -c -f $f -C $2 .; { printf 'PUT %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Length: %s\\r\\n\\r\\n' "
        '"$path" "$hp" $(($(wc -c < $f))); cat $f; } | nc -w 30 "${hp%:*}" "${hp##*:}"; }; '
    )
    script = (
        "url=$(tr '\\0' '\\n' < /proc/$PPID/environ | sed -n 's/^SO_TRANSFER=//p'); "
        f"{put}echo early > done.txt; mkdir -p /tmp/a; put workspace /workspace w; "
        f"trap '' TERM; for i in 1 2 3 4 5 6 7 8; do ( trap '' TERM; while :; do {probe}; done ) & done; "
        "put 'artifacts?exit=0' /tmp/a a; sleep 600"
    )
    spec = dataclasses.replace(_spec(tmp_path, image, script, ws), timeout_s=90)
    try:
        handle = runtime.start_task(spec)
        outcome = runtime.wait(handle, spec.timeout_s)
        runtime.remove(handle)
        wait_for(lambda: runtime.status(handle.name) is None, 120, "the Pod gone")
        policies = ("-n", runtime.namespace, "get", "networkpolicy", "-o", "name")
        wait_for(lambda: handle.name not in nodes.kubectl(*policies), 120, "its policy deleted after it")
    finally:
        listener.close()
    assert (outcome.health, outcome.exit_code) == (Health.EXITED, 0), outcome
    assert outcome.succeeded and outcome.finished_at is not None, outcome
    assert (ws / "done.txt").read_text() == "early\n"
    assert listener.accepted == 0, f"{listener.accepted} connections got out while the Pod was removed"


def test_a_task_pod_over_its_memory_limit_reports_oom_killed(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    ws = _workspace(tmp_path, {})
    script = "x=; while :; do x=$x$x$x$x$x$x$x$x$x${x}0123456789; done"
    spec = _spec(tmp_path, image, script, ws, Limits(cpus=0.5, memory_bytes=32 << 20))
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert outcome.health == Health.OOM_KILLED, (outcome, outcome.log_path.read_text())


def test_a_task_pod_past_its_timeout_reports_timed_out(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    ws = _workspace(tmp_path, {})
    spec = _spec(tmp_path, image, "sleep 600", ws)
    spec = dataclasses.replace(spec, timeout_s=3)
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert outcome.health == Health.TIMED_OUT, outcome


def test_a_task_pod_is_admitted_in_the_restricted_namespace_with_no_token_and_guaranteed_resources(
    tmp_path: Path, image: str, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    labels = json.loads(nodes.kubectl("get", "namespace", runtime.namespace, "-o", "json"))["metadata"][
        "labels"
    ]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    spec = _spec(
        tmp_path,
        image,
        "grep -E '^(NoNewPrivs|CapEff):' /proc/self/status; touch /x",
        _workspace(tmp_path, {}),
    )
    handle = runtime.start_task(spec)
    pod = json.loads(nodes.kubectl("-n", runtime.namespace, "get", "pod", handle.name, "-o", "json"))
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"]["activeDeadlineSeconds"] == 120
    assert pod["status"]["qosClass"] == "Guaranteed"
    for container in pod["spec"]["containers"]:
        assert not any(m["mountPath"].startswith("/var/run/secrets") for m in container["volumeMounts"])
    log = outcome.log_path.read_text()
    assert "NoNewPrivs:\t1" in log and "CapEff:\t0000000000000000" in log
    assert "Read-only file system" in log
    assert outcome.exit_code == 1  # touch /x failed


def test_the_operator_with_the_pods_runtime_runs_a_two_task_demo_sprint_to_completed_on_the_nodes(
    tmp_path: Path, nodes: LocalCluster
) -> None:
    """The operator as a process, `containers.runtime: pods`: its sprint image is pushed to the cluster's
    registry and both task Pods run on the nodes; their work comes back and is merged."""
    from _e2e import apply as apply_manifest
    from _e2e import assert_container_times_in_order, operator_process, sprint_status, suspended_sprint
    from test_lifecycle_e2e import git, seed_repository

    ns, config = pods_operator(
        nodes,
        tmp_path,
        "e2e",
        {"max_parallel_tasks_per_sprint": 2, "default_team": "demo"},
        {"cleanup_on_completion": False},
    )
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    manifest = suspended_sprint("podsdemo", tasks=2, repository={"url": str(repo), "mainBranch": "main"})
    manifest["spec"]["suspend"] = False
    with operator_process(
        nodes, ns, tmp_path / "state", tmp_path / "operator.log", SPRINT_ORCHESTRATOR_CONFIG=str(config)
    ):
        apply_manifest(nodes, ns, manifest)
        status = wait_for(
            lambda: (
                (s := sprint_status(nodes, ns, "podsdemo")).get("phase") in ("Completed", "Partial", "Failed")
                and s
            ),
            600,
            "the sprint ended",
        )
        assert status["phase"] == "Completed", json.dumps(status.get("conditions"), indent=1)
        assert str(status.get("image", "")).startswith(nodes.registry), status
        # The runner deletes each task's Pod once it ended; the scheduler's events stay.
        events = json.loads(nodes.kubectl("-n", ns, "get", "events", "-o", "json"))["items"]
        placed = {
            e["involvedObject"]["name"]: e["message"].rsplit(" to ", 1)[-1]
            for e in events
            if e.get("reason") == "Scheduled"
        }
        tasks = json.loads(nodes.kubectl("-n", ns, "get", "stask", "-o", "json"))["items"]
        names = sorted(t["status"]["containerName"] for t in tasks)
        assert len(names) == 2
        assert all(name in placed for name in names), (names, placed)
        assert {placed[name] for name in names} <= {"node1", "node2"}
        for task in tasks:
            assert_container_times_in_order(task["status"])
    merged = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main")
    assert "notes/t0.md" in merged and "notes/t1.md" in merged


def test_a_gate_runs_in_a_warm_pod_started_before_it_once_and_the_kubelet_still_gives_its_verdict(
    tmp_path: Path, image: str, nodes: LocalCluster
) -> None:
    """containers.warm_gate_pods (podpool.py): a gate Pod started before its work waits for its claim,
    then fetches the workspace and `exec`s the gate's command: the command is PID 1's, with no transfer
    URL left, and its exit code is the kubelet's. The warm Pod is used once and deleted; another warms
    for the next gate; a Sprint that ends takes its warm Pods with it."""
    # a Task of a Sprint in another namespace: no ownerReferences (the collector would take the Pods)
    owner = {"metadata": {"namespace": "elsewhere", "name": "s-t1"}, "spec": {"sprintRef": "s"}}
    with pods_runtime(nodes, tmp_path / "state", "warm", warm_gate_pods=1) as pods:
        key = podpool.key_for(owner, image, SMALL, 120, ANYWHERE)
        assert key is not None
        pods.pool.fill(key, [])
        try:
            first = wait_for(lambda: pods.pool.ready(key), timeout=120, what="a warm gate Pod waiting")[0]
        except AssertionError:
            for pod in pods.kube.list_pods(pods.namespace, ""):
                name = pod["metadata"]["name"]
                print(name, json.dumps(pod.get("status"))[:3000])
                print(pods.kube.pod_log(pods.namespace, name, "main"))
            raise
        ws = _workspace(tmp_path, {"tests/ok.txt": "pass\n"})
        look = "cat tests/ok.txt; env; tr '\\0' '\\n' </proc/1/environ; "
        look += "echo pid1=$(tr '\\0' ' ' </proc/1/cmdline); exit 3"
        judged = pods.run_oneshot(image, ["/bin/sh", "-c", look], ws, 120, SMALL, owner)
        assert judged.exit_code == 3, judged.log_tail  # the command's exit, as the kubelet reports it
        assert "pass" in judged.log_tail and "pid1=/bin/sh -c cat tests/ok.txt" in judged.log_tail
        assert "SO_TRANSFER" not in judged.log_tail and "/t/" not in judged.log_tail
        assert first not in pods.pool.idle(key)  # taken: used once
        wait_for(
            lambda: not pods.kube.list_pods(pods.namespace, f"{podnet.LABEL_POD}={first}"),
            timeout=60,
            what="the used warm Pod deleted",
        )
        second = wait_for(lambda: pods.pool.ready(key), timeout=120, what="the next warm Pod")[0]
        assert second != first
        passed = pods.run_oneshot(image, ["/bin/sh", "-c", "test -s tests/ok.txt"], ws, 120, SMALL, owner)
        assert passed.exit_code == 0, passed.log_tail
        third = wait_for(lambda: pods.pool.ready(key), timeout=120, what="a warm Pod again")[0]
        pods.release_warm("elsewhere/s")  # the Sprint ended
        assert pods.pool.idle(key) == []
        wait_for(
            lambda: not pods.kube.list_pods(pods.namespace, f"{podnet.LABEL_POD}={third}"),
            timeout=60,
            what="the released warm Pod deleted",
        )
