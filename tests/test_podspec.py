"""Pod manifests and the verdict on a finished Pod, from the Pod status the kubelet writes."""

from __future__ import annotations

from typing import Any

from sprint_orchestrator.runtime import Health, Limits, Scheduling, podbuild, podnet, podspec, podstatus
from sprint_orchestrator.runtime.images import PackageSources


def _run(**changes: Any) -> podspec.PodRun:
    values: dict[str, Any] = {
        "name": "so-s-t-1",
        "namespace": "ns",
        "image": "reg:5000/img:1",
        "command": ["python3", "/opt/team/run.py"],
        "transfer_url": "http://10.0.0.1:4000/t/token",
        "labels": {"sprintorchestrator.dev/task": "t"},
        "limits": Limits(cpus=1.5, memory_bytes=256 << 20),
        "timeout_s": 90.5,
        "environment": {"A": "1"},
        "upload": True,
        "mounts": ["/opt/team"],
        "canary": "10.0.0.1:8084",
        "policy_wait_s": 29.5,
    }
    return podspec.PodRun(**{**values, **changes})


def test_a_task_pod_is_restricted_guaranteed_tokenless_and_bounded_in_time() -> None:
    pod = podspec.manifest(_run())
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 91
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert "initContainers" not in spec  # the download is the wrapper's first step (a start costs ~1.4 s)
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == podspec.AGENT_UID
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["limits"] == {"memory": str(256 << 20), "cpu": "1500m"}
        assert container["resources"]["requests"] == container["resources"]["limits"]
    main = spec["containers"][0]
    assert main["command"][-2:] == ["python3", "/opt/team/run.py"]
    assert {"name": "mount-0", "mountPath": "/opt/team", "readOnly": True} in main["volumeMounts"]
    assert {"name": "mount-0", "mountPath": "/so-mount/0"} in main["volumeMounts"]  # the wrapper fills it
    script = main["command"][2]
    assert script.index("/workspace") < script.index('unset SO_TRANSFER; "$@"')  # fetched, then run
    assert script.index("$SO_CANARY") < script.index('unset SO_TRANSFER; "$@"')  # the policy holds first
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert (env["SO_CANARY"], env["SO_POLICY_WAIT"]) == ("10.0.0.1:8084", "30")
    assert any(m["mountPath"] == "/artifacts" for m in main["volumeMounts"])


def test_a_oneshot_pod_fetches_then_execs_its_command_without_the_transfer_url() -> None:
    main = podspec.manifest(_run(upload=False, mounts=[]))["spec"]["containers"][0]
    assert main["command"][-2:] == ["python3", "/opt/team/run.py"]
    assert main["command"][2].endswith(f'unset {podspec.TRANSFER_ENV}; exec "$@"')  # nothing of it stays
    assert not any(m["mountPath"] == "/artifacts" for m in main["volumeMounts"])  # nothing goes back


def _pod(
    phase: str, reason: str | None = None, main: dict[str, Any] | None = None, fetch: int = 0
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "initContainerStatuses": [{"name": "fetch", "state": {"terminated": {"exitCode": fetch}}}],
    }
    if reason:
        status["reason"] = reason
    if main is not None:
        status["containerStatuses"] = [{"name": "main", "state": {"terminated": main}}]
    return {"status": status}


def test_the_verdict_follows_the_kubelets_pod_status() -> None:
    assert podstatus.verdict(None).health == Health.REMOVED
    assert not podstatus.verdict({"status": {"phase": "Running"}}).done
    ok = podstatus.verdict(_pod("Succeeded", main={"exitCode": 0, "reason": "Completed"}))
    assert (ok.health, ok.exit_code) == (Health.EXITED, 0)
    failed = podstatus.verdict(_pod("Failed", main={"exitCode": 3, "reason": "Error"}))
    assert (failed.health, failed.exit_code) == (Health.EXITED, 3)
    oom = podstatus.verdict(_pod("Failed", main={"exitCode": 137, "reason": "OOMKilled"}))
    assert oom.health == Health.OOM_KILLED
    late = podstatus.verdict(_pod("Failed", "DeadlineExceeded", main={"exitCode": 137, "reason": "Error"}))
    assert late.health == Health.TIMED_OUT
    no_workspace = podstatus.verdict(_pod("Failed", fetch=1))
    assert no_workspace.exit_code is None and "fetching the workspace failed" in no_workspace.reason


def test_the_sprints_scheduling_choices_go_on_the_pod_and_nothing_when_it_made_none() -> None:
    placed = Scheduling(
        runtime_class_name="gvisor",
        node_selector={"kubernetes.io/hostname": "node2"},
        tolerations=({"key": "dedicated", "operator": "Equal", "value": "sprints", "effect": "NoSchedule"},),
        priority_class_name="batch-low",
    )
    spec = podspec.manifest(_run(scheduling=placed))["spec"]
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "node2"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "sprints", "effect": "NoSchedule"}
    ]
    assert spec["priorityClassName"] == "batch-low"
    bare = podspec.manifest(_run())["spec"]
    assert not {"runtimeClassName", "nodeSelector", "tolerations", "priorityClassName"} & set(bare)
    assert not Scheduling() and placed


def test_a_pull_secret_and_host_aliases_go_on_the_pod_only_when_set() -> None:
    spec = podspec.manifest(
        _run(pull_secret="registry-pull", host_aliases={"203.0.113.80": ["deb.debian.org"]}, tmp_limit="5Gi")
    )["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert spec["hostAliases"] == [{"ip": "203.0.113.80", "hostnames": ["deb.debian.org"]}]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "5Gi"}} in spec["volumes"]
    bare = podspec.manifest(_run())["spec"]
    assert not {"imagePullSecrets", "hostAliases"} & set(bare)


def test_a_build_pod_s_policy_lets_it_out_to_its_package_sources_and_the_operator_only() -> None:
    policy = podnet.network_policy(
        "so-oneshot-1", "ns", {}, "10.0.0.1", [8081], [], extra=[("203.0.113.80", 80), ("10.0.0.1", 3141)]
    )
    egress = policy["spec"]["egress"]
    assert egress[0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert egress[1:] == [
        {"to": [{"ipBlock": {"cidr": "203.0.113.80/32"}}], "ports": [{"protocol": "TCP", "port": 80}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 3141}]},
    ]
    assert policy["spec"]["ingress"] == []


def test_a_build_s_inputs_are_checked_words_and_its_routes_name_each_source_once() -> None:
    sources = PackageSources(apt=("http://203.0.113.80/debian",), pip=("http://10.0.0.1:3141/simple",))
    env = podbuild.environment(["apt:jq", "pip:requests==2.32.*", "ripgrep"], sources)
    assert env == {
        "SO_APT_PACKAGES": "jq ripgrep",
        "SO_APT_SOURCES": "http://203.0.113.80/debian",
        "SO_PIP_PACKAGES": "requests==2.32.*",  # word-split with globbing off in the script (set -f)
        "SO_PIP_SOURCES": "http://10.0.0.1:3141/simple",
        "SO_PIP_TRUSTED": "10.0.0.1:3141",
    }
    network = podbuild.network(["apt:jq", "pip:six"], sources, lambda host: (host,))
    assert network.egress == [("10.0.0.1", 3141), ("203.0.113.80", 80)]
    assert network.aliases == {}  # addresses need no /etc/hosts entry
    named = PackageSources(apt=("http://deb.example/debian", "http://deb.example/security"), pip=())
    addresses = {"deb.example": ("192.0.2.7", "192.0.2.8")}
    network = podbuild.network(["apt:jq"], named, addresses.__getitem__)
    assert network.egress == [("192.0.2.7", 80), ("192.0.2.8", 80)]  # one route per host and port
    assert network.aliases == {"192.0.2.7": ["deb.example"], "192.0.2.8": ["deb.example"]}
    assert "set -euf" in podbuild.SCRIPT
    assert podbuild.host_aliases([podbuild.Route("deb.example", ("192.0.2.7",), 80)]) == {
        "192.0.2.7": ["deb.example"]
    }
