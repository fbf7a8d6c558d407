"""The REST API of `sprintctl dashboard`, as a real process against the real kube-apiserver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _board import (
    TOKEN,
    create_sprint_with_tasks,
    dashboard,
    set_status,
    sprint_body,
    wait_until,
)
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator import ANNOTATION_RETRY
from sprint_orchestrator.kube import SPRINTS, TASKS, Kube

pytestmark = pytest.mark.cluster
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def ns(cluster: LocalCluster) -> Iterator[str]:
    name = f"api-{uuid.uuid4().hex[:8]}"
    kubectl(cluster, "create", "namespace", name)
    yield name
    kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def kube(cluster: LocalCluster) -> Kube:
    return Kube.from_kubeconfig(str(cluster.kubeconfig))


@pytest.fixture(scope="module")
def base(cluster: LocalCluster, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dashboard(cluster.kubeconfig, ns, tmp_path_factory.mktemp("dash")) as url:
        yield url


def prd(sprint_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "sprint_id": sprint_id,
        "sprint_name": "Word counts",
        "tasks": [
            {"task_id": "count", "title": "Count words", "priority": "high", "estimated_tokens": 20000},
            {"task_id": "docs", "title": "Document", "dependencies": ["count"]},
        ],
        "max_parallel_tasks": 3,
        **extra,
    }


def test_creating_a_sprint_needs_a_token(base: str) -> None:
    assert httpx.post(f"{base}/api/sprints", json=prd("no-token")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    response = httpx.post(f"{base}/api/sprints", json=prd("no-token"), headers=wrong)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_post_creates_a_suspended_sprint_readable_by_its_prd_id(base: str, kube: Kube, ns: str) -> None:
    response = httpx.post(f"{base}/api/sprints", json=prd("Web_1"), headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json() == {"name": "web-1", "sprint_id": "Web_1", "created": True}
    stored = kube.get(SPRINTS, ns, "web-1")
    assert stored is not None and stored["spec"]["suspend"] is True
    got = wait_until(lambda: httpx.get(f"{base}/api/sprints/Web_1").json(), what="GET by sprint id")
    assert got["name"] == "web-1"
    assert got["spec"]["maxParallelTasks"] == 3


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"sprint_name": "x", "tasks": []}, "sprint_id"),
        (prd("bad-1", max_parallel_tasks=0), "max_parallel_tasks"),
        ({**prd("bad-2"), "tasks": [{"task_id": "a..b", "title": "t"}]}, "tasks[0].task_id"),
        ({**prd("bad-3"), "tasks": [{"task_id": "a"}]}, "tasks[0].title"),
    ],
)
def test_an_invalid_sprint_definition_is_422_naming_the_field(
    base: str, body: dict[str, Any], path: str
) -> None:
    response = httpx.post(f"{base}/api/sprints", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert path in [problem["path"] for problem in response.json()["detail"]]


def test_the_422_lists_a_field_error_and_the_cross_task_problems_together(base: str) -> None:
    body = prd("bad-4", container_config={"resource_limits": {"memory": "4G"}})
    body["tasks"][0]["dependencies"] = ["docs"]  # count <-> docs
    body["tasks"].append({"task_id": "docs", "title": "Document again"})
    response = httpx.post(f"{base}/api/sprints", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [problem["path"] for problem in detail] == [
        "container_config.resource_limits.memory",
        "tasks[2].task_id",
        "tasks",
    ]
    assert "write 4Gi (Kubernetes) or 4g (Podman/Docker)" in detail[0]["msg"]
    assert detail[2]["msg"] == "dependency cycle count -> docs -> count"


def test_a_body_that_is_not_an_object_is_422(base: str) -> None:
    response = httpx.post(
        f"{base}/api/sprints", content=b"[1, 2]", headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 422


def test_start_unsuspends_the_sprint(base: str, kube: Kube, ns: str) -> None:
    httpx.post(f"{base}/api/sprints", json=prd("start-me"), headers=AUTH).raise_for_status()
    wait_until(lambda: httpx.get(f"{base}/api/sprints/start-me").status_code == 200, what="sprint seen")
    assert httpx.put(f"{base}/api/sprints/start-me/start").status_code == 401
    response = httpx.put(f"{base}/api/sprints/start-me/start", headers=AUTH)
    assert response.status_code == 202, response.text
    assert (kube.get(SPRINTS, ns, "start-me") or {})["spec"]["suspend"] is False


def test_unknown_sprint_and_task_are_404(base: str) -> None:
    assert httpx.get(f"{base}/api/sprints/nothing-here").status_code == 404
    assert httpx.get(f"{base}/api/dashboard/nothing-here").status_code == 404
    assert httpx.get(f"{base}/api/tasks/nothing-here/status").status_code == 404
    assert httpx.post(f"{base}/api/tasks/nothing-here/retry", headers=AUTH).status_code == 404


def test_dashboard_json_follows_task_status_through_the_watch(base: str, kube: Kube, ns: str) -> None:
    create_sprint_with_tasks(kube, ns, sprint_body("board-1", tasks=2, maxParallelTasks=4))
    set_status(
        kube,
        ns,
        "board-1",
        "t0",
        {
            "column": "in-progress",
            "containerId": "c0ffee",
            "startTime": "2026-01-01T12:00:00Z",
            "tokens": {"actual": 321},
        },
    )

    def card() -> dict[str, Any] | None:
        out = httpx.get(f"{base}/api/dashboard/board-1").json()
        found = [c for c in out.get("cards", []) if c["task_id"] == "t0" and c["column"] == "in-progress"]
        return {**out, "card": found[0]} if found else None

    out = wait_until(card, what="t0 in progress on the board")
    assert out["board_id"] == "sprint-board-1"
    assert out["columns"][1] == {"id": "in-progress", "name": "In Progress", "limit": 4}
    assert out["card"]["custom_fields"] == {
        "token_usage": 321,
        "start_time": "2026-01-01T12:00:00Z",
        "completion_time": None,
        "container_id": "c0ffee",
    }
    kaiban = httpx.get(f"{base}/api/dashboard/board-1/kaiban").json()
    assert [t["status"] for t in kaiban["tasks"]] == ["DOING", "TODO"]


def test_task_status_is_found_by_name_by_id_and_by_sprint_and_id(base: str, kube: Kube, ns: str) -> None:
    create_sprint_with_tasks(kube, ns, sprint_body("look-1", tasks=1))
    set_status(kube, ns, "look-1", "t0", {"column": "review", "phase": "Review"})
    for key in ("look-1-t0", "look-1:t0"):
        got = wait_until(
            lambda k=key: httpx.get(f"{base}/api/tasks/{k}/status").json().get("status"), what=key
        )
        assert got["column"] == "review"
    assert httpx.get(f"{base}/api/tasks/t0/status").status_code == 409  # t0 is in several sprints


def test_retry_annotates_a_failed_task_and_refuses_a_running_one(base: str, kube: Kube, ns: str) -> None:
    create_sprint_with_tasks(kube, ns, sprint_body("retry-1", tasks=2))
    set_status(kube, ns, "retry-1", "t0", {"column": "failed", "error": "boom"})
    set_status(kube, ns, "retry-1", "t1", {"column": "in-progress"})
    wait_until(lambda: httpx.get(f"{base}/api/tasks/retry-1:t0/status").json().get("status"), what="seen")
    wait_until(lambda: httpx.get(f"{base}/api/tasks/retry-1:t1/status").json().get("status"), what="seen")
    assert httpx.post(f"{base}/api/tasks/retry-1:t0/retry").status_code == 401
    response = httpx.post(f"{base}/api/tasks/retry-1:t0/retry", headers=AUTH)
    assert response.status_code == 202, response.text
    annotations = (kube.get(TASKS, ns, "retry-1-t0") or {})["metadata"]["annotations"]
    assert annotations[ANNOTATION_RETRY] == response.json()["nonce"]
    refused = httpx.post(f"{base}/api/tasks/retry-1:t1/retry", headers=AUTH)
    assert refused.status_code == 409
    assert "in-progress" in refused.json()["detail"]


def test_openapi_lists_every_prd_endpoint(base: str) -> None:
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/api/sprints",
        "/api/sprints/{sprint_id}",
        "/api/sprints/{sprint_id}/start",
        "/api/tasks/{task_id}/status",
        "/api/tasks/{task_id}/retry",
        "/api/dashboard/{sprint_id}",
        "/api/dashboard/{sprint_id}/kaiban",
    }


def test_without_a_token_file_no_action_is_possible(cluster: LocalCluster, ns: str, tmp_path: Path) -> None:
    with dashboard(cluster.kubeconfig, ns, tmp_path, token=None) as url:
        response = httpx.post(f"{url}/api/sprints", json=prd("never"), headers=AUTH)
        assert response.status_code == 403
        assert "--token-file" in response.json()["detail"]


def test_logs_and_artifacts_are_served_only_from_the_state_dir(
    cluster: LocalCluster, kube: Kube, ns: str, tmp_path: Path
) -> None:
    create_sprint_with_tasks(kube, ns, sprint_body("files-1", tasks=2))
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "RESULTS.md").write_text("# done\n")
    (tmp_path / "t0.log").write_text("line 1\nline 2\n")
    set_status(
        kube,
        ns,
        "files-1",
        "t0",
        {"logPath": str(tmp_path / "t0.log"), "artifactsPath": str(tmp_path / "art")},
    )
    set_status(kube, ns, "files-1", "t1", {"logPath": "/etc/hostname"})
    with dashboard(cluster.kubeconfig, ns, tmp_path) as url:
        assert httpx.get(f"{url}/api/tasks/files-1:t0/logs").text == "line 1\nline 2\n"
        assert httpx.get(f"{url}/api/tasks/files-1:t0/logs", params={"offset": 7}).text == "line 2\n"
        files = httpx.get(f"{url}/api/tasks/files-1:t0/artifacts").json()["files"]
        assert files == [{"path": "RESULTS.md", "size": 7}]
        assert httpx.get(f"{url}/api/tasks/files-1:t0/artifacts/RESULTS.md").text == "# done\n"
        assert httpx.get(f"{url}/api/tasks/files-1:t0/artifacts/..%2Ft0.log").status_code == 404
        assert httpx.get(f"{url}/api/tasks/files-1:t1/logs").status_code == 404


def test_an_agent_written_page_is_a_download_that_cannot_run(
    cluster: LocalCluster, kube: Kube, ns: str, tmp_path: Path
) -> None:
    create_sprint_with_tasks(kube, ns, sprint_body("files-2", tasks=1))
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "x.html").write_text("<script>fetch('/api/sprints', {method: 'POST'})</script>")
    set_status(kube, ns, "files-2", "t0", {"artifactsPath": str(tmp_path / "art")})
    with dashboard(cluster.kubeconfig, ns, tmp_path) as url:
        response = httpx.get(f"{url}/api/tasks/files-2:t0/artifacts/x.html")
    assert response.headers["content-disposition"] == 'attachment; filename="x.html"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_pages_carry_a_strict_policy_and_the_api_docs_need_no_cdn(base: str) -> None:
    for page in ("/", "/board/x", "/report/x", "/kaiban/x", "/docs"):
        response = httpx.get(f"{base}{page}")
        assert response.status_code == 200, page
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, page
        assert "<script>" not in response.text and "https://" not in response.text, page
    assert httpx.get(f"{base}/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(f"{base}/redoc").status_code == 404
