"""A dashboard with no clone (its own Pod, in a cluster) shows a task's diff by asking the operator.

The real operator process serves its internal diff endpoint (SPRINT_ORCHESTRATOR_DIFF_PORT, a token
file); the real dashboard process, started with `--operator-url` and `--operator-token-file` and a
state directory without any clone, answers `GET /api/tasks/{id}/diff` from it. The endpoint refuses a
missing or wrong token and namespaces the operator does not watch; the dashboard's answer is the
operator's diff, JSON or text/x-diff."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from _board import dashboard, free_port
from _e2e import operator_process, wait_for
from localcluster import LocalCluster
from test_review_api import reviewed_task

pytestmark = pytest.mark.cluster


def test_a_dashboard_without_the_clone_shows_the_diff_the_operator_serves_over_its_token_guarded_endpoint(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    _, base, head = reviewed_task(cluster, namespace, state, "rv-op")
    token = secrets.token_hex(20)
    token_file = tmp_path / "diff-token"
    token_file.write_text(token + "\n")
    port = free_port()
    operator_url = f"http://127.0.0.1:{port}"
    endpoint = f"{operator_url}/internal/v1/diff/{namespace}/rv-op-t0"
    bearer = {"Authorization": f"Bearer {token}"}
    env = {"SPRINT_ORCHESTRATOR_DIFF_PORT": str(port), "SPRINT_ORCHESTRATOR_DIFF_TOKEN_FILE": str(token_file)}
    with operator_process(cluster, namespace, state, tmp_path / "op.log", **env):
        wait_for(lambda: _answers(endpoint), timeout=120, what="the operator's diff endpoint")
        assert httpx.get(endpoint, timeout=30).status_code == 401
        wrong = {"Authorization": f"Bearer {secrets.token_hex(20)}"}
        assert httpx.get(endpoint, headers=wrong, timeout=30).status_code == 401
        elsewhere = httpx.get(
            f"{operator_url}/internal/v1/diff/kube-system/rv-op-t0", headers=bearer, timeout=30
        )
        assert elsewhere.status_code == 404 and "not one this operator watches" in elsewhere.json()["detail"]
        direct = httpx.get(endpoint, headers=bearer, timeout=30)
        assert direct.status_code == 200, direct.text
        assert (direct.json()["base"], direct.json()["head"]) == (base, head)

        no_clone = tmp_path / "dashboard-state"
        no_clone.mkdir(mode=0o700)
        with dashboard(cluster.kubeconfig, namespace, no_clone) as alone:
            missing = httpx.get(f"{alone}/api/tasks/rv-op:t0/diff", timeout=30)
            assert missing.status_code == 404  # what a dashboard Pod answered before
        absent = tmp_path / "not-created"  # the Secret's optional mount, before anyone created it
        unset = ("--operator-url", operator_url, "--operator-token-file", str(absent))
        with dashboard(cluster.kubeconfig, namespace, no_clone, *unset) as waiting:
            refused = httpx.get(f"{waiting}/api/tasks/rv-op:t0/diff", timeout=30)
            assert refused.status_code == 503 and str(absent) in refused.json()["detail"]
        extra = ("--operator-url", operator_url, "--operator-token-file", str(token_file))
        with dashboard(cluster.kubeconfig, namespace, no_clone, *extra) as url:
            got = httpx.get(f"{url}/api/tasks/rv-op:t0/diff", timeout=60)
            assert got.status_code == 200, got.text
            body = got.json()
            assert (body["base"], body["head"], body["phase"], body["attempt"]) == (base, head, "Review", 1)
            assert body["files"] == direct.json()["files"]
            flags = {f["path"]: (f["protected"], f["outOfScope"]) for f in body["files"]}
            assert flags == {"app.py": (False, False), "tests/test_app.py": (True, True)}
            text = httpx.get(f"{url}/api/tasks/rv-op:t0/diff", headers={"Accept": "text/x-diff"}, timeout=60)
            assert text.headers["content-type"].startswith("text/x-diff")
            assert text.text.startswith("diff --git a/app.py b/app.py\n") and "+    return 2\n" in text.text
            none = httpx.get(f"{url}/api/tasks/rv-op:t1/diff", timeout=60)
            assert none.status_code == 404 and "no committed attempt yet" in none.json()["detail"]
    assert token not in (tmp_path / "op.log").read_text()
    assert not list(no_clone.rglob("*.git"))  # the dashboard never had a clone


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 401
    except httpx.HTTPError:
        return False
