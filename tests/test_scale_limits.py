"""A sprint of 1,000 tasks: accepted alike by `sprintctl validate`, `sprintctl import`, the REST API and
the real kube-apiserver; one task more refused by all four with the same line naming spec.tasks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kopf.testing import KopfRunner

from _board import TOKEN, dashboard
from _e2e import get_json, sprint_status, wait_for
from _oplog import unexpected_errors
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator import API_VERSION, cli, report
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.handlers.diffbase import DigestDiffBaseStorage, spec_digest
from sprint_orchestrator.model import SPEC_BYTES_MAX, TASKS_MAX, spec_bytes, validate_sprint_spec
from sprint_orchestrator.status import SprintStatus

TOO_MANY = f"Too many: {TASKS_MAX + 1}: must have at most {TASKS_MAX} items"
on_cluster = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


def prd(count: int, sprint_id: str = "fanout", pad: int = 0) -> dict[str, Any]:
    """A planner's fan-out: `count` tasks, every tenth depending on the one before it."""
    return {
        "sprint_id": sprint_id,
        "sprint_name": "Codemod",
        "tasks": [
            {
                "task_id": f"codemod-{i:04d}",
                "title": f"Rewrite package {i}",
                "description": "x" * pad,
                "files_to_modify": [f"pkg{i}/mod.py"],
                "dependencies": [f"codemod-{i - 1:04d}"] if i % 10 else [],
            }
            for i in range(count)
        ],
        "max_parallel_tasks": 5,
    }


def manifest(count: int, name: str = "fanout", pad: int = 0) -> dict[str, Any]:
    spec = {
        "team": {"type": "demo"},
        "suspend": True,
        "tasks": [
            {
                "id": t["task_id"],
                "title": t["title"],
                "description": t["description"],
                "filesToModify": t["files_to_modify"],
                "dependencies": t["dependencies"],
            }
            for t in prd(count, pad=pad)["tasks"]
        ],
    }
    return {"apiVersion": API_VERSION, "kind": "Sprint", "metadata": {"name": name}, "spec": spec}


def largest_pad(count: int) -> int:
    """The description length that brings a `count`-task spec closest to SPEC_BYTES_MAX."""
    base = spec_bytes(validate_sprint_spec(manifest(count)["spec"]))
    return (SPEC_BYTES_MAX - base) // count


# --- the rule, and the CLI ----------------------------------------------------------------------


def test_a_sprint_of_the_maximum_task_count_is_valid_and_one_more_names_spec_tasks() -> None:
    assert len(validate_sprint_spec(manifest(TASKS_MAX)["spec"]).tasks) == TASKS_MAX
    with pytest.raises(InvalidInput) as refused:
        validate_sprint_spec(manifest(TASKS_MAX + 1)["spec"])
    assert refused.value.problems == [f"spec.tasks: {TOO_MANY}"]


def test_a_spec_over_the_size_limit_is_refused_naming_its_size() -> None:
    pad = largest_pad(TASKS_MAX)
    assert spec_bytes(validate_sprint_spec(manifest(TASKS_MAX, pad=pad)["spec"])) <= SPEC_BYTES_MAX
    with pytest.raises(InvalidInput) as refused:
        validate_sprint_spec(manifest(TASKS_MAX, pad=pad + 1)["spec"])
    (line,) = refused.value.problems
    assert line.startswith("spec: ") and f"at most {SPEC_BYTES_MAX} bytes" in line


@pytest.mark.parametrize("command", ["validate", "import"])
def test_sprintctl_validate_and_import_accept_1000_tasks_and_refuse_1001_naming_tasks(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, bad = tmp_path / "ok.json", tmp_path / "bad.json"
    ok.write_text(json.dumps(prd(TASKS_MAX)))
    bad.write_text(json.dumps(prd(TASKS_MAX + 1)))
    assert cli.main([command, str(ok)]) == 0
    out = capsys.readouterr().out
    if command == "import":
        assert len(yaml.safe_load(out)["spec"]["tasks"]) == TASKS_MAX
    else:
        assert f"valid ({TASKS_MAX} tasks)" in out
    assert cli.main([command, str(bad)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{bad}: tasks: {TOO_MANY}"]


def test_sprintctl_validate_names_spec_tasks_of_a_manifest_with_one_task_too_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sprint.yaml"
    path.write_text(yaml.safe_dump(manifest(TASKS_MAX + 1)))
    assert cli.main(["validate", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{path}: spec.tasks: {TOO_MANY}"]


# --- what keeps a 1,000-task Sprint inside one etcd object ----------------------------------------


def test_kopf_keeps_a_digest_of_the_spec_not_a_copy() -> None:
    storage = DigestDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    body: Any = {"metadata": {"labels": {"a": "b"}}, "spec": manifest(TASKS_MAX)["spec"], "status": {}}
    essence = storage.build(body=body)
    assert essence == {"metadata": {"labels": {"a": "b"}}, "spec": {"sha256": spec_digest(body["spec"])}}
    changed: Any = {**body, "spec": {**body["spec"], "suspend": False}}
    assert storage.build(body=changed) != essence
    assert len(json.dumps(essence)) < 200


def test_the_status_keeps_a_huge_report_s_head_and_names_the_whole_file() -> None:
    small = "# report\n" + "| t | Completed |\n" * 100
    assert report.status_markdown(small, ".sprint/reports/s.md") == small
    huge = "# report\n" + "| task-0000 | Completed (Merged) | 1 | 0.4 | - | - | 0/0 | - |\n" * 5000
    kept = report.status_markdown(huge, ".sprint/reports/s.md")
    assert len(kept) <= report.STATUS_MARKDOWN_MAX
    assert huge.startswith(kept.rsplit("\n…", 1)[0])
    assert kept.endswith("the whole report is .sprint/reports/s.md on the sprint branch\n")


# --- the real kube-apiserver --------------------------------------------------------------------


def full_status(count: int) -> dict[str, Any]:
    """The largest Sprint status the operator writes for `count` tasks (every list at its cap)."""
    gate = {"name": "g", "command": "c" * 200, "exitCode": 1, "passed": False, "logTail": "l" * 2000}
    return {
        "phase": "Integrating",
        "merged": [f"codemod-{i:04d}-{'m' * 50}" for i in range(count)],
        "report": {"path": ".sprint/reports/fanout.md", "markdown": "r" * report.STATUS_MARKDOWN_MAX},
        "integration": [gate] * 100,
        "message": "m" * 4000,
        "kopf": {"lastHandledConfiguration": json.dumps({"spec": {"sha256": "0" * 64}})},
    }


def create(cluster: LocalCluster, namespace: str, doc: dict[str, Any]) -> str:
    # client-side `kubectl apply` copies the whole manifest into an annotation (at most 256 KiB in
    # all): a 1 MB Sprint is created, or applied with --server-side
    return kubectl(cluster, "create", "-n", namespace, "-f", "-", check=False, input=json.dumps(doc))


@pytest.mark.cluster
@on_cluster
def test_the_apiserver_stores_1000_tasks_at_the_size_limit_with_the_largest_status(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    doc = manifest(TASKS_MAX, pad=largest_pad(TASKS_MAX))
    assert "created" in create(cluster, namespace, doc)
    status = full_status(TASKS_MAX)
    SprintStatus.model_validate(status)  # every field is one the operator may write
    patch = tmp_path / "status.json"
    patch.write_text(json.dumps({"status": status}))
    args = ("patch", "-n", namespace, "sprint", "fanout", "--subresource=status", "--type=merge")
    kubectl(cluster, *args, "--patch-file", str(patch))
    stored = get_json(cluster, "sprint", "fanout", "-n", namespace)
    assert len(stored["spec"]["tasks"]) == TASKS_MAX
    assert stored["status"]["merged"] == status["merged"]
    # what kopf's own status storage would have written: the spec a second time, over etcd's limit
    status["kopf"] = {"lastHandledConfiguration": json.dumps({"spec": stored["spec"]})}
    patch.write_text(json.dumps({"status": status}))
    refused = kubectl(cluster, *args, "--patch-file", str(patch), check=False)
    assert "too large" in refused or "larger than max" in refused, refused  # etcd's or its client's


@pytest.mark.cluster
@on_cluster
def test_the_apiserver_refuses_1001_tasks_with_the_same_line(cluster: LocalCluster, namespace: str) -> None:
    out = create(cluster, namespace, manifest(TASKS_MAX + 1))
    assert f"spec.tasks: {TOO_MANY}" in out, out


# --- the REST API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    namespace = f"scale-{uuid.uuid4().hex[:8]}"
    kubectl(cluster, "create", "namespace", namespace)
    try:
        with dashboard(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("dash")) as url:
            yield url, namespace
    finally:
        kubectl(cluster, "delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.cluster
@on_cluster
def test_the_api_creates_1000_tasks_and_refuses_1001_naming_tasks(
    cluster: LocalCluster, api: tuple[str, str]
) -> None:
    base, namespace = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = httpx.post(f"{base}/api/sprints", json=prd(TASKS_MAX, "Big_1"), headers=auth, timeout=60)
    assert created.status_code == 201, created.text
    stored = get_json(cluster, "sprint", "big-1", "-n", namespace)
    assert len(stored["spec"]["tasks"]) == TASKS_MAX
    refused = httpx.post(f"{base}/api/sprints", json=prd(TASKS_MAX + 1, "Big_2"), headers=auth, timeout=60)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == [{"path": "tasks", "msg": TOO_MANY}]


# --- the cross-task checks are the operator's -----------------------------------------------------


@pytest.fixture
def operator(
    cluster: LocalCluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("SPRINT_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--standalone", "--namespace", namespace, "-m", "sprint_orchestrator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert not unexpected_errors(runner.output), unexpected_errors(runner.output)


@pytest.mark.cluster
@on_cluster
def test_an_unknown_dependency_is_stored_then_refused_by_the_operator_naming_the_field(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    doc = manifest(3, name="unknown")
    doc["spec"]["tasks"][2]["dependencies"] = ["nowhere"]
    assert "created" in create(cluster, namespace, doc)

    def refused() -> dict[str, Any] | None:
        conditions = sprint_status(cluster, namespace, "unknown").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready" and c["status"] == "False"), None)

    condition = wait_for(refused, timeout=90, what="Ready=False")
    assert condition["reason"] == "InvalidSpec"
    line = "spec.tasks[2].dependencies[0]: 'nowhere' is not the id of a task in this sprint"
    assert condition["message"] == line
    stored = get_json(cluster, "sprint", "unknown", "-n", namespace)  # with the CRD's defaults
    kopf_state = stored["status"]["kopf"]["lastHandledConfiguration"]
    assert json.loads(kopf_state)["spec"] == {"sha256": spec_digest(stored["spec"])}
