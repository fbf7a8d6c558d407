"""The review endpoints of `sprintctl dashboard` (a real process, the real kube-apiserver, a real git
clone where the operator keeps it): the diff as JSON and text/x-diff, request-changes and approve
recorded as nonce annotations with the commit reviewed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from _board import TOKEN, create_sprint_with_tasks, dashboard, set_status, sprint_body
from _gitrepo import make_origin, write_files
from localcluster import LocalCluster
from sprint_orchestrator import (
    ANNOTATION_APPROVE,
    ANNOTATION_APPROVE_COMMIT,
    ANNOTATION_REQUEST_CHANGES,
    ANNOTATION_REVIEW,
)
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.kube import TASKS, Kube

pytestmark = pytest.mark.cluster
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def reviewed_task(cluster: LocalCluster, namespace: str, state: Path, name: str) -> tuple[Kube, str, str]:
    """A Sprint whose task t0 committed a change (in the clone the operator would keep under the
    state directory) and waits in Review: (kube, base, head)."""
    origin = make_origin(state, {"app.py": "def f():\n    return 1\n", "tests/test_app.py": "x = 1\n"})
    engine = GitEngine.open(str(origin), GitEngine.root_for(state / "trees", str(origin)))
    engine.create_sprint(name)
    ws = engine.create_task(name, "t0", 1, ["app.py"])
    write_files(ws.workspace, {"app.py": "def f():\n    return 2\n", "tests/test_app.py": "x = 2\n"})
    result = engine.commit_task(ws, name, "t0", ["app.py"], "Team", "team@example.com")
    assert result.commit is not None
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    body = sprint_body(name, tasks=2, repository={"url": str(origin)})
    body["spec"]["tasks"][0]["filesToModify"] = ["app.py"]
    create_sprint_with_tasks(kube, namespace, body)
    review = {"phase": "Review", "column": "review", "baseCommit": ws.base_commit, "commit": result.commit}
    set_status(kube, namespace, name, "t0", {**review, "attempt": 1})
    set_status(kube, namespace, name, "t1", {"phase": "Running", "column": "in-progress"})
    return kube, ws.base_commit, result.commit


def annotations(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(((kube.get(TASKS, namespace, name) or {}).get("metadata") or {}).get("annotations") or {})


def test_the_diff_is_json_with_flags_or_a_unified_diff_by_the_accept_header(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    _, base, head = reviewed_task(cluster, namespace, tmp_path, "rv-1")
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as url:
        got = httpx.get(f"{url}/api/tasks/rv-1:t0/diff", timeout=30)
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["base"], body["head"], body["phase"]) == (base, head, "Review")
        flags = {
            f["path"]: (f["additions"], f["deletions"], f["protected"], f["outOfScope"])
            for f in body["files"]
        }
        assert flags == {"app.py": (1, 1, False, False), "tests/test_app.py": (1, 1, True, True)}
        lines = [ln for h in body["files"][0]["hunks"] for ln in h["lines"] if ln["origin"] == "+"]
        assert lines == [{"origin": "+", "old": None, "new": 2, "text": "    return 2"}]
        text = httpx.get(f"{url}/api/tasks/rv-1:t0/diff", headers={"Accept": "text/x-diff"}, timeout=30)
        assert text.headers["content-type"].startswith("text/x-diff")
        assert text.text.startswith("diff --git a/app.py b/app.py\n") and "+    return 2\n" in text.text
        none = httpx.get(f"{url}/api/tasks/rv-1:t1/diff", timeout=30)
        assert none.status_code == 404 and "no committed attempt yet" in none.json()["detail"]


def test_request_changes_needs_a_token_checks_the_review_and_annotates_the_task(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    kube, _, head = reviewed_task(cluster, namespace, tmp_path, "rv-2")
    endpoint = "/api/tasks/rv-2:t0/request-changes"
    review = {"message": "Return 3.", "comments": [{"path": "app.py", "line": 2, "body": "3, not 2"}]}
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as url:
        assert httpx.post(f"{url}{endpoint}", json=review, timeout=30).status_code == 401
        bad = {"comments": [{"path": "../app.py", "line": 2, "body": "x"}]}
        refused = httpx.post(f"{url}{endpoint}", json=bad, headers=AUTH, timeout=30)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["path"] == "body.comments[0].path"
        stale = httpx.post(f"{url}{endpoint}", json={**review, "commit": "f" * 40}, headers=AUTH, timeout=30)
        assert stale.status_code == 409 and "review it again" in stale.json()["detail"]
        running = httpx.post(
            f"{url}/api/tasks/rv-2:t1/request-changes", json=review, headers=AUTH, timeout=30
        )
        assert running.status_code == 409
        done = httpx.post(f"{url}{endpoint}", json={**review, "by": "alice"}, headers=AUTH, timeout=30)
        assert done.status_code == 202, done.text
        assert done.json()["commit"] == head
    found = annotations(kube, namespace, "rv-2-t0")
    assert found[ANNOTATION_REQUEST_CHANGES] == done.json()["nonce"]
    assert json.loads(found[ANNOTATION_REVIEW]) == {**review, "by": "alice", "commit": head}


def test_approve_records_the_commit_reviewed_and_refuses_a_stale_one(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    kube, base, head = reviewed_task(cluster, namespace, tmp_path, "rv-3")
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as url:
        stale = httpx.post(
            f"{url}/api/tasks/rv-3:t0/approve", json={"commit": base}, headers=AUTH, timeout=30
        )
        assert stale.status_code == 409
        assert ANNOTATION_APPROVE not in annotations(kube, namespace, "rv-3-t0")
        done = httpx.post(f"{url}/api/tasks/rv-3:t0/approve", headers=AUTH, timeout=30)
        assert done.status_code == 202, done.text
    found = annotations(kube, namespace, "rv-3-t0")
    assert (found[ANNOTATION_APPROVE], found[ANNOTATION_APPROVE_COMMIT]) == (done.json()["nonce"], head)
