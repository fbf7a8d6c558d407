"""The generated CRDs: in sync with the models, structural, and enforced by the real kube-apiserver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator import API_VERSION, cli, crdgen
from sprint_orchestrator.crdgen import SchemaError, structural
from sprint_orchestrator.status import SprintStatus, TaskStatus

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sprint.yaml"
# hack/localcluster.py drops the Popen objects of the processes it starts on purpose (they outlive it);
# their ResourceWarning must not fail the test that happens to start the session's cluster.
on_cluster = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


def schema_of(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.fixture(params=["sprints", "tasks"])
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    return crdgen.sprint_crd() if request.param == "sprints" else crdgen.task_crd()


def test_committed_crds_match_the_models() -> None:
    assert crdgen.stale_files(REPO / "crds") == [], "run `sprintctl crds` and commit crds/"


def test_crds_check_command_fails_on_a_stale_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 1
    assert "sprints.yaml: differs from the models" in capsys.readouterr().err
    assert cli.main(["crds", "--dir", str(tmp_path)]) == 0
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "tasks.yaml").write_text((tmp_path / "tasks.yaml").read_text() + "# edited\n")
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 1


INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def test_every_schema_node_is_typed(crd: dict[str, Any]) -> None:
    for path, node in walk(schema_of(crd)):
        int_or_string = node.get("x-kubernetes-int-or-string") and node.get("anyOf") == INT_OR_STRING
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or int_or_string, path
        assert not {"$ref", "allOf", "oneOf", "title"} & set(node), path
        assert "anyOf" not in node or int_or_string, path


def test_only_status_kopf_and_the_cpu_count_preserve_unknown_fields(crd: dict[str, Any]) -> None:
    preserving = [p for p, n in walk(schema_of(crd)) if n.get("x-kubernetes-preserve-unknown-fields")]
    # cpus is a number or a string: no typed schema says that; its pattern and bounds still apply
    cpus = [".spec.container.resourceLimits.cpus"] if crd["spec"]["names"]["kind"] == "Sprint" else []
    assert preserving == [*cpus, ".status.kopf"]


def test_spec_strings_and_arrays_are_bounded_for_the_cel_cost_estimate(crd: dict[str, Any]) -> None:
    for path, node in walk(schema_of(crd)["properties"]["spec"]):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_every_status_field_is_declared() -> None:
    for doc, model in ((crdgen.sprint_crd(), SprintStatus), (crdgen.task_crd(), TaskStatus)):
        declared = set(schema_of(doc)["properties"]["status"]["properties"])
        assert declared == {field.alias for field in model.model_fields.values()}


def test_printer_columns_point_at_declared_fields(crd: dict[str, Any]) -> None:
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        node = schema_of(crd)
        if column["jsonPath"].startswith(".metadata."):
            continue
        for part in column["jsonPath"].strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] in ("string", "integer", "object"), column


def test_structural_converts_optional_and_exclusive_minimum() -> None:
    node = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}], "default": None}
    assert structural(node, {}, status=False) == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_structural_refuses_a_union_of_types() -> None:
    with pytest.raises(SchemaError, match="union"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {}, status=False)


# --- against the real kube-apiserver ------------------------------------------------------------


def sprint_manifest(name: str, **spec_changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = name
    manifest["spec"].update(spec_changes)
    return manifest


def apply(cluster: LocalCluster, namespace: str, manifest: dict[str, Any], *extra: str) -> str:
    args = ("apply", "-n", namespace, "-f", "-", *extra)
    return kubectl(cluster, *args, check=False, input=json.dumps(manifest))


@pytest.mark.cluster
@on_cluster
def test_the_apiserver_accepts_the_demo_sprint_and_applies_defaults(
    cluster: LocalCluster, namespace: str
) -> None:
    apply(cluster, namespace, sprint_manifest("demo"))
    stored = json.loads(kubectl(cluster, "get", "-n", namespace, "sprint", "demo", "-o", "json"))
    assert stored["apiVersion"] == API_VERSION
    assert stored["spec"]["suspend"] is False
    assert stored["spec"]["tasks"][0]["priority"] == "high"
    assert stored["spec"]["tasks"][5]["priority"] == "low"
    assert "demo" in kubectl(cluster, "get", "-n", namespace, "spr")


def task_list(*tasks: tuple[str, list[str]]) -> list[dict[str, Any]]:
    return [{"id": tid, "title": tid, "dependencies": deps} for tid, deps in tasks]


@pytest.mark.cluster
@on_cluster
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tasks": task_list(("a", []), ("a", []))}, "Duplicate value"),
        ({"tasks": task_list(("a", ["a"]))}, "a task cannot depend on itself"),
        ({"tasks": task_list(("a..b", []))}, "must not contain '..'"),
        ({"tasks": task_list(("x.lock", []))}, "must not end with '.lock'"),
        ({"tasks": [{"id": "a", "title": "a", "filesToModify": ["../etc"]}]}, "filesToModify[0]"),
        ({"team": {"type": "command"}}, "command is required when type is 'command'"),
        ({"container": {"resourceLimits": {"cpus": 0}}}, "cpus"),
        ({"container": {"environment": {"1X": "y"}}}, "environment variable names must match"),
        ({"container": {"nodeSelector": {"bad key": "x"}}}, "nodeSelector keys must be label keys"),
        ({"container": {"nodeSelector": {"zone": "-a"}}}, "spec.container.nodeSelector.zone"),
        (
            {"container": {"tolerations": [{"key": "a", "operator": "Exists", "value": "v"}]}},
            "value must be empty when operator is Exists",
        ),
        ({"container": {"tolerations": [{"value": "v"}]}}, "operator must be Exists when key is empty"),
        ({"container": {"tolerations": [{"key": "a", "tolerationSeconds": 1}]}}, "needs effect NoExecute"),
        ({"container": {"tolerations": [{"key": "a", "effect": "Never"}]}}, "tolerations[0].effect"),
        ({"container": {"runtimeClassName": "Kata_1"}}, "spec.container.runtimeClassName"),
        ({"maxParallelTasks": 51}, "maxParallelTasks"),
        ({"tasks": []}, "tasks"),
    ],
)
def test_the_apiserver_rejects_what_the_models_reject(
    cluster: LocalCluster, namespace: str, changes: dict[str, Any], message: str
) -> None:
    output = apply(cluster, namespace, sprint_manifest("bad", **changes), "--dry-run=server")
    assert "is invalid" in output and message in output, output


FULL_SPRINT_STATUS = {
    "observedGeneration": 1,
    "phase": "Running",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Initialized",
            "message": "ok",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
    "columns": {"ready": 1, "inProgress": 2, "review": 0, "completed": 3, "failed": 0},
    "total": 6,
    "progress": "3/6",
    "tokens": {
        "budget": 10,
        "used": 5,
        "estimated": 7,
        "byCategory": {"x": 1},
        "byModel": {"m": 2},
        "costUsd": 0.5,
    },
    "tokenSummary": "5/10",
    "branch": "sprint/demo",
    "worktree": "/tmp/w",
    "image": "img",
    "baseCommit": "a",
    "mainCommit": "b",
    "integratedCommit": "c",
    "startedAt": "2025-01-01T00:00:00Z",
    "completedAt": "2025-01-01T00:01:00Z",
    "mergeQueue": ["cli"],
    "merged": ["words"],
    "report": {"path": "/r.md", "summary": "s", "slotUtilization": 0.8},
    "message": "m",
    "kopf": {"progress": {"anything": {"goes": [1, 2]}}},
}


@pytest.mark.cluster
@on_cluster
def test_no_sprint_status_field_is_pruned(cluster: LocalCluster, namespace: str) -> None:
    assert SprintStatus.model_validate(FULL_SPRINT_STATUS).dump() == FULL_SPRINT_STATUS
    apply(cluster, namespace, sprint_manifest("full"))
    patch = json.dumps({"status": FULL_SPRINT_STATUS})
    kubectl(
        cluster,
        "patch",
        "-n",
        namespace,
        "sprint",
        "full",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )
    stored = json.loads(kubectl(cluster, "get", "-n", namespace, "sprint", "full", "-o", "json"))
    assert stored["status"] == FULL_SPRINT_STATUS
    columns = kubectl(cluster, "get", "-n", namespace, "sprint", "full")
    assert "Running" in columns and "3/6" in columns and "5/10" in columns


FULL_TASK_STATUS = {
    "observedGeneration": 2,
    "conditions": [{"type": "Completed", "status": "False", "reason": "Running"}],
    "column": "in-progress",
    "phase": "Gating",
    "attempt": 2,
    "maxAttempts": 3,
    "branch": "task/demo/words",
    "workspace": "/tmp/ws",
    "containerId": "abc",
    "containerName": "so-demo-words-2",
    "containerHealth": "oom-killed",
    "exitCode": 137,
    "startTime": "2025-01-01T00:00:00Z",
    "completionTime": "2025-01-01T00:00:30Z",
    "durationSeconds": 30.5,
    "tokens": {
        "estimated": 100,
        "actual": 120,
        "input": 50,
        "output": 40,
        "cacheRead": 20,
        "cacheCreation": 10,
        "byCategory": {"implementation": 120},
        "byModel": {"claude": 120},
        "costUsd": 0.01,
        "partial": False,
        "efficiency": 1.2,
        "source": "agent",
        "agentReported": 118,
    },
    "results": {"summary": "done", "present": True, "artifacts": ["RESULTS.md"]},
    "gates": [
        {
            "name": "tests",
            "command": "pytest",
            "exitCode": 1,
            "durationSeconds": 1.5,
            "passed": False,
            "logTail": "x",
        }
    ],
    "changedFiles": ["a.py"],
    "outOfScope": ["b.py"],
    "commit": "c1",
    "mergeCommit": "c2",
    "conflicts": ["textstats/__init__.py"],
    "error": "e",
    "reason": "OOMKilled",
    "recoveryAction": "retry with more memory",
    "nextRetryAt": "2025-01-01T00:05:00Z",
    "blockedBy": ["words"],
    "kopf": {"dsinfo": "x"},
}


@pytest.mark.cluster
@on_cluster
def test_no_task_status_field_is_pruned(cluster: LocalCluster, namespace: str) -> None:
    assert TaskStatus.model_validate(FULL_TASK_STATUS).dump() == FULL_TASK_STATUS
    task = {
        "apiVersion": API_VERSION,
        "kind": "Task",
        "metadata": {"name": "demo-words"},
        "spec": {"sprintRef": "demo", "sprintId": "demo", "taskId": "words", "title": "Words"},
    }
    apply(cluster, namespace, task)
    stored = patch_task_status(cluster, namespace, "demo-words", FULL_TASK_STATUS)
    assert stored["status"] == FULL_TASK_STATUS
    assert stored["spec"]["priority"] == "medium"


@pytest.mark.cluster
@on_cluster
def test_a_new_task_is_pending_from_its_creation_without_a_status_write(
    cluster: LocalCluster, namespace: str
) -> None:
    task = {
        "apiVersion": API_VERSION,
        "kind": "Task",
        "metadata": {"name": "demo-new"},
        "spec": {"sprintRef": "demo", "sprintId": "demo", "taskId": "new", "title": "New"},
        "status": {"phase": "Completed", "column": "completed"},  # a create cannot set a status
    }
    created = json.loads(
        kubectl(cluster, "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(task))
    )
    assert (
        created["status"]
        == TaskStatus.CREATED
        == {
            "phase": "Pending",
            "column": "ready",
            "attempt": 0,
            "containerHealth": "none",
        }
    )
    assert created["metadata"]["generation"] == 1
    columns = kubectl(cluster, "get", "-n", namespace, "stask", "demo-new", "--no-headers")
    assert columns.split()[1:4] == ["demo", "ready", "0"]  # sprint, column, attempt
    # a status write keeps the defaults it does not set, and sets what it names
    stored = patch_task_status(
        cluster, namespace, "demo-new", {"phase": "Running", "attempt": 1, "maxAttempts": 3}
    )
    assert stored["status"] == {**TaskStatus.CREATED, "phase": "Running", "attempt": 1, "maxAttempts": 3}


def patch_task_status(cluster: LocalCluster, namespace: str, name: str, status: dict[str, Any]) -> Any:
    """A merge patch of the Task's status subresource; the Task as stored after it."""
    patch = json.dumps({"status": status})
    kubectl(
        cluster, "patch", "-n", namespace, "stask", name, "--subresource=status", "--type=merge", "-p", patch
    )
    return json.loads(kubectl(cluster, "get", "-n", namespace, "stask", name, "-o", "json"))
