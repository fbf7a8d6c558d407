"""Install it like a Kubernetes product: the kustomize manifests and the Helm chart are rendered with
the real tools (kubectl's built-in kustomize, Helm built from its Go module), applied server-side to the
local control plane and read back. The operator's ClusterRole is checked against the apiserver's audit
log of a real operator process running as that ServiceAccount: every call allowed, every rule used."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _e2e import SPRINTCTL, apply, get_json, sprint_status, suspended_sprint, tasks_of, wait_for
from _rbac import (
    AuditedCluster,
    Call,
    audited_calls,
    sa_kubeconfig,
    unfinished_requests,
    unused_rules,
    violations,
)
from conftest import CRDS, kubectl
from localcluster import BIN, LocalCluster, free_port
from sprint_orchestrator.config import ContainersSection
from test_lifecycle_e2e import config as lifecycle_config
from test_lifecycle_e2e import example, seed_repository

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "sprint-orchestrator"
HELM = BIN / "helm"
OPERATOR_SA = "system:serviceaccount:sprint-orchestrator:sprint-orchestrator"
# Grants the run below cannot exercise, each with the code path that needs it.
RARE_PATHS = {
    (
        "sprintorchestrator.dev",
        "tasks",
        "get",
    ): "kube.Kube.create reads the existing Task after a 409 (a race)",
}


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail("Helm is missing: run hack/build-helm.sh (or hack/setup.sh)")
    return run(str(HELM), *args, check=check)


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = run(str(BIN / "kubectl"), "kustomize", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def helm_template(*sets: str, release: str = "so", namespace: str = "so-system") -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--include-crds"]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def role_of(docs: list[dict[str, Any]], name_suffix: str) -> list[dict[str, Any]]:
    return next(d["rules"] for d in by_kind(docs, "Role") if d["metadata"]["name"].endswith(name_suffix))


def rules_of(docs: list[dict[str, Any]], name_suffix: str) -> list[dict[str, Any]]:
    return next(
        d["rules"] for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith(name_suffix)
    )


# --- without a cluster ---------------------------------------------------------------------------


def test_generated_copies_are_fresh() -> None:
    result = run(sys.executable, str(REPO / "hack" / "sync-ops.py"), "--check", check=False)
    assert result.returncode == 0, result.stderr


def test_helm_lint_passes_strictly_with_every_option_on() -> None:
    helm("lint", str(CHART), "--strict")
    helm(
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "grafana.dashboard.enabled=true",
        "--set",
        "dashboard.tokensSecret=so-tokens",
        "--set",
        "dashboard.readTokensSecret=so-readers",
    )


def test_the_dashboard_reads_its_action_and_read_tokens_from_secrets_when_named() -> None:
    def dashboard_pod(*sets: str) -> dict[str, Any]:
        args = [a for s in sets for a in ("--set", s)]
        docs = yaml.safe_load_all(helm("template", "so", str(CHART), *args).stdout)
        deployment = next(
            d
            for d in docs
            if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-dashboard")
        )
        return dict(deployment["spec"]["template"]["spec"])

    plain = dashboard_pod()
    assert not any(
        a.startswith(("--token-file", "--read-token-file")) for a in plain["containers"][0]["args"]
    )
    pod = dashboard_pod("dashboard.tokensSecret=so-tokens", "dashboard.readTokensSecret=so-readers")
    args = pod["containers"][0]["args"]
    assert "--token-file=/etc/sprint-orchestrator/tokens/tokens" in args
    assert "--read-token-file=/etc/sprint-orchestrator/read-tokens/tokens" in args
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secrets["read-tokens"]["secretName"] == "so-readers" and secrets["tokens"]["defaultMode"] == 0o440


def test_the_dashboard_asks_the_operator_for_diffs_with_a_token_both_pods_mount() -> None:
    docs = [d for d in yaml.safe_load_all(helm("template", "so", str(CHART)).stdout) if d]
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}
    operator, dash = deployments["so-sprint-orchestrator"], deployments["so-sprint-orchestrator-dashboard"]
    (secret,) = [
        d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == "so-sprint-orchestrator-diffs"
    ]
    assert len(base64.b64decode(secret["data"]["token"])) == 40
    for pod in (operator, dash):
        volumes = {v["name"]: v.get("secret") for v in pod["volumes"]}
        assert volumes["diffs-token"]["secretName"] == "so-sprint-orchestrator-diffs"
    env = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}
    assert (env["SPRINT_ORCHESTRATOR_DIFF_PORT"], env["SPRINT_ORCHESTRATOR_DIFF_ADDRESS"]) == (
        "8083",
        "0.0.0.0",
    )
    args = dash["containers"][0]["args"]
    assert "--operator-url=http://so-sprint-orchestrator-diffs.default.svc:8083" in args
    assert "--operator-token-file=/etc/sprint-orchestrator/diffs/token" in args
    policy = next(
        d for d in by_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == "so-sprint-orchestrator"
    )
    (rule,) = [r for r in policy["spec"]["ingress"] if {"protocol": "TCP", "port": 8083} in r["ports"]]
    assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "dashboard"
    off = helm("template", "so", str(CHART), "--set", "dashboard.diffs.enabled=false").stdout
    assert "DIFF_PORT" not in off and "--operator-url" not in off


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("operator.logFormat=xml", "logFormat"),
        ("metrics.port=0", "port"),
        ("unknownKey=1", "unknownKey"),
        ("operator.env.HOME=/x", "HOME"),
    ],
)
def test_the_values_schema_refuses_bad_values(setting: str, field: str) -> None:
    result = helm("template", "so", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert field in result.stderr


def test_chart_and_kustomize_grant_the_same_operator_rules() -> None:
    chart, base = helm_template(), kustomize(REPO / "manifests")
    assert rules_of(chart, "sprint-orchestrator") == rules_of(base, "sprint-orchestrator")
    assert rules_of(chart, "-dashboard") == rules_of(base, "-dashboard")
    role = [role_of(docs, "-tasks") for docs in (chart, base)]
    assert role[0] == role[1]
    assert {"resources": ["pods"], "verbs": ["get", "list", "create", "delete"], "apiGroups": [""]} in role[0]
    # The Lease: the same rules, each naming its install's Lease, which the Deployment is told to hold.
    for docs, name in ((chart, "so-sprint-orchestrator"), (base, "sprint-orchestrator")):
        lease = role_of(docs, "-lease")
        assert lease == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [name],
             "verbs": ["get", "update"]},
        ]  # fmt: skip
        deploy = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == name)
        env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["SPRINT_ORCHESTRATOR_LEASE_NAME"]["value"] == name
        assert (
            env["SPRINT_ORCHESTRATOR_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
            == "metadata.namespace"
        )
    off = helm_template("operator.leaderElection.enabled=false")
    assert not [d for d in by_kind(off, "Role") if d["metadata"]["name"].endswith("-lease")]


def test_the_default_install_runs_tasks_as_pods_with_nothing_of_the_node() -> None:
    """Chart and kustomize base: containers.runtime pods, no hostPath, no Podman socket, nothing
    privileged; the kustomize namespace enforces the restricted Pod Security level."""
    for docs in (helm_template(), kustomize(REPO / "manifests")):
        config = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
        containers = yaml.safe_load(config["data"]["config.yaml"])["containers"]
        assert containers["runtime"] == "pods"
        assert containers["transfer_address"].endswith("-transfer.so-system.svc:8081") or containers[
            "transfer_address"
        ].endswith("-transfer.sprint-orchestrator.svc:8081")
        for deploy in by_kind(docs, "Deployment"):
            spec = deploy["spec"]["template"]["spec"]
            assert not [v for v in spec.get("volumes", []) if "hostPath" in v]
            assert spec["enableServiceLinks"] is False  # else SPRINT_ORCHESTRATOR_METRICS_PORT=tcp://…
            for container in spec["containers"]:
                env = {e["name"] for e in container.get("env", [])}
                assert "SPRINT_ORCHESTRATOR_PODMAN_URL" not in env
                security = container.get("securityContext") or {}
                assert security.get("allowPrivilegeEscalation") is False
                assert not security.get("privileged")
                assert security["capabilities"] == {"drop": ["ALL"]}
        services = {d["metadata"]["name"] for d in by_kind(docs, "Service")}
        assert any(name.endswith("-transfer") for name in services)
    namespace = by_kind(kustomize(REPO / "manifests"), "Namespace")[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_task_pods_reach_the_operators_workspace_endpoint_and_proxy_through_one_service() -> None:
    """Both ports the task Pods' own NetworkPolicies open (transfer, proxy) and the canary they leave out
    are configured, listened on by the operator container, exposed by the transfer Service and let in by
    the operator's policy (so only a task Pod's own policy keeps it from the canary)."""
    wired = (helm_template(), helm_template("tasks.proxy.port=9444", "tasks.canary.port=9445"))
    for docs in (*wired, kustomize(REPO / "manifests")):
        config = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
        containers = yaml.safe_load(config["data"]["config.yaml"])["containers"]
        listen = int(containers["transfer_listen"].rsplit(":", 1)[1])
        wanted = {listen, containers["proxy_port"], containers["canary_port"]}
        assert len(wanted) == 3 and 0 not in wanted
        deploy = next(
            d for d in by_kind(docs, "Deployment") if not d["metadata"]["name"].endswith("dashboard")
        )
        [operator] = deploy["spec"]["template"]["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in operator["ports"]}
        assert wanted <= set(named.values())
        service = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-transfer"))
        assert {(p["port"], named[p["targetPort"]]) for p in service["spec"]["ports"]} == {
            (port, port) for port in wanted
        }
        policy = next(
            d for d in by_kind(docs, "NetworkPolicy")
            if d["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "operator"
        )  # fmt: skip
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert wanted <= allowed


def test_the_chart_keeps_the_podman_socket_only_for_the_podman_runtime() -> None:
    docs = helm_template("tasks.runtime=podman")
    deploy = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("orchestrator"))
    volumes = deploy["spec"]["template"]["spec"]["volumes"]
    sockets = [v["hostPath"]["path"] for v in volumes if "hostPath" in v]
    assert sockets == ["/run/user/1000/podman/podman.sock"]
    assert [d["metadata"]["name"] for d in by_kind(docs, "Role")] == ["so-sprint-orchestrator-lease"]


def test_the_chart_ships_the_generated_crds_and_monitoring_when_asked() -> None:
    docs = helm_template(
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "grafana.dashboard.enabled=true",
    )
    crds = {d["metadata"]["name"]: d for d in by_kind(docs, "CustomResourceDefinition")}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert crds[crd["metadata"]["name"]] == crd
    rule = by_kind(docs, "PrometheusRule")[0]
    source = yaml.safe_load((REPO / "manifests" / "monitoring" / "alerts.rules.yaml").read_text())
    assert rule["spec"] == source
    board = next(d for d in by_kind(docs, "ConfigMap") if "sprint-orchestrator.json" in d["data"])
    dashboard = board["data"]["sprint-orchestrator.json"]
    assert json.loads(dashboard)["uid"] == "sprint-orchestrator"
    assert by_kind(docs, "ServiceMonitor")[0]["spec"]["jobLabel"] == "app.kubernetes.io/name"


def test_the_operator_deployment_is_a_single_recreated_replica_with_kopf_probes() -> None:
    for docs in (kustomize(REPO / "manifests"), helm_template()):
        deploy = next(
            d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("orchestrator")
        )
        assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        assert "--liveness" in container["args"]
        liveness = container["args"][container["args"].index("--liveness") + 1]
        assert liveness.endswith(":8080/healthz")
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


# --- on the local control plane ------------------------------------------------------------------


def server_side_apply(cluster: LocalCluster, docs: list[dict[str, Any]], manager: str) -> None:
    text = yaml.safe_dump_all(docs)
    kubectl(cluster, "apply", "--server-side", f"--field-manager={manager}", "-f", "-", input=text)


def read_back(cluster: LocalCluster, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        meta = doc["metadata"]
        ns = ["-n", meta.get("namespace") or "sprint-orchestrator"]
        cluster_scoped = doc["kind"] in {
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        }
        live = get_json(
            cluster, f"{doc['kind'].lower()}.{_group(doc)}", meta["name"], *([] if cluster_scoped else ns)
        )
        assert live["metadata"]["name"] == meta["name"]
        for key in ("spec", "rules", "roleRef", "subjects", "data"):
            if key in doc and key != "spec":
                assert live[key] == doc[key], f"{doc['kind']}/{meta['name']}: {key} differs"
        if doc["kind"] == "Deployment":
            if "strategy" in doc["spec"]:
                assert live["spec"]["strategy"] == doc["spec"]["strategy"]
            assert (
                live["spec"]["template"]["spec"]["containers"][0]["args"]
                == doc["spec"]["template"]["spec"]["containers"][0]["args"]
            )


def _group(doc: dict[str, Any]) -> str:
    api = doc["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


@pytest.mark.cluster
def test_kustomize_manifests_apply_server_side_and_read_back(cluster: LocalCluster) -> None:
    docs = kustomize(REPO / "manifests")
    server_side_apply(cluster, docs, "sprint-orchestrator-kustomize")
    read_back(cluster, docs)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    } <= kinds
    again = kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=sprint-orchestrator-kustomize",
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
    )
    assert "serverside-applied" in again


@pytest.mark.cluster
def test_the_rendered_chart_applies_server_side_and_reads_back(cluster: LocalCluster) -> None:
    kubectl(cluster, "create", "namespace", "so-system", check=False)
    docs = helm_template(namespace="so-system")
    server_side_apply(cluster, docs, "helm")
    for doc in docs:
        doc["metadata"].setdefault("namespace", "so-system")
    read_back(cluster, [d for d in docs if d["kind"] != "CustomResourceDefinition"])


# --- least privilege, from the audit log ---------------------------------------------------------


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditedCluster]:
    local = AuditedCluster(tmp_path_factory.mktemp("audited"))
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.mark.cluster
def test_the_operator_needs_exactly_its_cluster_role(audited: AuditedCluster, tmp_path: Path) -> None:
    docs = kustomize(REPO / "manifests")
    server_side_apply(audited, docs, "sprint-orchestrator-kustomize")
    audited.wait_established()
    kubectl(audited, "create", "namespace", "work")
    config = sa_kubeconfig(audited, "sprint-orchestrator", "sprint-orchestrator", tmp_path / "sa.kubeconfig")
    sprint = suspended_sprint("audit", tasks=2)
    sprint["metadata"]["labels"] = {"app.kubernetes.io/instance": "gitops-app"}
    sprint["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "gitops-app:sprintorchestrator.dev/Sprint:work/audit"
    }
    apply(audited, "work", sprint)
    cyclic = suspended_sprint("cyclic", tasks=2)
    cyclic["spec"]["tasks"][0]["dependencies"] = ["t1"]
    apply(audited, "work", cyclic)
    # A real sprint too, so the audit covers the whole lifecycle: containers, gates, merges, a conflict,
    # a failed gate waiting in review, a human approval, bisection, main moving, Events.
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    apply(audited, "work", example("sprint-trouble.yaml", repo))
    port = free_port()
    # As deployed: holding its Lease (renewed every 5 s, so the audit sees renewals).
    lease = {
        "SPRINT_ORCHESTRATOR_LEASE_NAMESPACE": "sprint-orchestrator",
        "SPRINT_ORCHESTRATOR_LEASE_NAME": "sprint-orchestrator",
        "SPRINT_ORCHESTRATOR_LEASE_SECONDS": "15",
    }
    with operator_as(config, tmp_path, port, {**lifecycle_config(tmp_path), **lease}) as log:
        wait_for(
            lambda: task_status(audited, "work", "textstats-trouble", "buggy").get("phase") == "Review",
            timeout=300,
            what="the failed gate in review",
        )
        kubectl(
            audited,
            "annotate",
            "stask",
            "textstats-trouble-buggy",
            "-n",
            "work",
            "sprintorchestrator.dev/approve=audit-1",
        )
        wait_for(
            lambda: sprint_status(audited, "work", "textstats-trouble").get("phase") == "Partial",
            timeout=300,
            what="the trouble sprint to end Partial",
        )
        tasks = wait_for(
            lambda: len(tasks_of(audited, "work", "audit")) == 2 and tasks_of(audited, "work", "audit"),
            what="2 tasks",
        )
        wait_for(lambda: sprint_status(audited, "work", "audit").get("progress") == "0/2", what="progress")
        wait_for(
            lambda: "InvalidSpec" in json.dumps(sprint_status(audited, "work", "cyclic")), what="InvalidSpec"
        )
        scraped = wait_for(
            lambda: _scrape(port, 'sprint_orchestrator_tasks{column="ready",namespace="work"'), what="metrics"
        )
        kubectl(audited, "delete", "sprint", "audit", "-n", "work", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not unfinished_requests(audited.audit_log, OPERATOR_SA),
        what="the audit log to record the end of the stopped operator's watches",
    )
    assert 'sprint="audit"} 2.0' in scraped
    for task in tasks:  # Argo CD tracks the Sprint; its Tasks must not look like app resources
        assert "app.kubernetes.io/instance" not in task["metadata"].get("labels", {})
        assert not any(k.startswith("argocd.argoproj.io") for k in task["metadata"].get("annotations") or {})
    _assert_json_logs(log)
    calls = audited_calls(audited.audit_log, OPERATOR_SA)
    rules = rules_of(docs, "sprint-orchestrator") + role_of(docs, "-lease")
    assert calls, "the audit log shows no call by the operator's ServiceAccount"
    assert violations(calls, rules) == [], (
        "calls the ClusterRole and Lease Role do not allow (or were refused)"
    )
    unused = [grant for grant in unused_rules(calls, rules) if grant not in RARE_PATHS]
    assert unused == [], "ClusterRole or Lease Role grants the operator never used"
    holder = json.loads(
        kubectl(audited, "-n", "sprint-orchestrator", "get", "lease", "sprint-orchestrator", "-o", "json")
    )
    assert holder["spec"]["holderIdentity"]


def task_status(local: LocalCluster, namespace: str, sprint: str, task: str) -> dict[str, Any]:
    for item in tasks_of(local, namespace, sprint):
        if item["spec"]["taskId"] == task:
            return dict(item.get("status") or {})
    return {}


def _scrape(port: int, needle: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return text if needle in text else None


def _assert_json_logs(log: Path) -> None:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    ours = [r for r in records if r.get("message") == "operator started"]
    assert ours and "state_dir" in ours[0], "our log lines carry their extra fields as JSON keys"


class operator_as:
    """`sprintctl operator` cluster-wide (as deployed), authenticated as a ServiceAccount token."""

    def __init__(self, kubeconfig: Path, tmp: Path, metrics_port: int, extra: dict[str, str]) -> None:
        self.env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            SPRINT_ORCHESTRATOR_STATE_DIR=str(tmp / "state"),
            SPRINT_ORCHESTRATOR_METRICS_PORT=str(metrics_port),
            CONTAINERS_CONF=str(REPO / "hack" / "containers.conf"),
            **extra,
        )
        self.log = tmp / "operator.log"

    def __enter__(self) -> Path:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [SPRINTCTL, "operator", "--log-format", "json"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.log

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_rbac_comparison_flags_missing_grants_refusals_and_unused_rules() -> None:
    rules = [{"apiGroups": ["g"], "resources": ["tasks"], "verbs": ["get", "list"]}]
    calls = [
        Call("g", "tasks", "get", 200),
        Call("g", "tasks/status", "patch", 200),
        Call("g", "tasks", "get", 403),
    ]
    assert violations(calls, rules) == [
        Call("g", "tasks", "get", 403),
        Call("g", "tasks/status", "patch", 200),
    ]
    assert unused_rules(calls, rules) == [("g", "tasks", "list")]


def test_the_charts_warm_gate_pods_reach_the_operators_configuration() -> None:
    """tasks.warmGatePods (0: none) is containers.warm_gate_pods of the config the operator loads."""
    for values, wanted in (((), 0), (("tasks.warmGatePods=2",), 2)):
        docs = helm_template(*values)
        config = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
        loaded = yaml.safe_load(config["data"]["config.yaml"])
        assert loaded["containers"]["warm_gate_pods"] == wanted
        assert ContainersSection.model_validate(loaded["containers"]).warm_gate_pods == wanted
