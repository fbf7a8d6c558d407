"""The review on the board in real Chromium (Debian's package, driven by Playwright): the diff view with
syntax highlighting and flags, a comment on a line, Request changes reaching the Task as annotations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _board import TOKEN, dashboard, wait_until
from localcluster import LocalCluster
from sprint_orchestrator import ANNOTATION_REQUEST_CHANGES, ANNOTATION_REVIEW
from test_browser import browser, card, page, shot  # noqa: F401  (the fixtures)
from test_review_api import annotations, reviewed_task

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


def test_a_reviewer_reads_the_diff_comments_a_line_and_requests_changes(
    cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
    page: Any,  # noqa: F811
) -> None:
    kube, _, head = reviewed_task(cluster, namespace, tmp_path, "rvb-1")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/board/rvb-1")
        page.evaluate(f"localStorage.setItem('sprintctl-token', '{TOKEN}')")
        page.click(card("review", "t0"))
        app = page.wait_for_selector('#diff-view .diff-file[data-path="app.py"]')
        assert "+1" in app.text_content() and "modified" in app.text_content()
        # Python highlighted by highlight.js: `return` and `def` are keywords
        keywords = page.eval_on_selector_all(
            '#diff-view .diff-file[data-path="app.py"] .hljs-keyword', "els => els.map(e => e.textContent)"
        )
        assert "return" in keywords
        test_file = '#diff-view .diff-file[data-path="tests/test_app.py"]'
        assert page.text_content(f"{test_file} .badge.protected") == "protected"
        assert page.text_content(f"{test_file} .badge.out-of-scope") == "out-of-scope"
        page.click('#diff-view tr.line[data-path="app.py"][data-line="2"]')
        page.fill("#diff-view tr.comment-form textarea", "return 3 here")
        page.click("#diff-view tr.comment-form button.add-comment")
        page.wait_for_selector("#diff-view tr.comment:has-text('app.py:2: return 3 here')")
        assert "app.py:2" in page.text_content("#review-draft")
        page.fill("#review-message", "Close: one value is wrong.")
        shot(page, "board-review-diff")
        page.click("#request-changes")
        page.wait_for_selector("#review-state:has-text('Changes requested')")
        found = wait_until(
            lambda: (a := annotations(kube, namespace, "rvb-1-t0")).get(ANNOTATION_REQUEST_CHANGES) and a,
            what="the request-changes annotation",
        )
    assert json.loads(found[ANNOTATION_REVIEW]) == {
        "by": "dashboard",
        "message": "Close: one value is wrong.",
        "comments": [{"path": "app.py", "line": 2, "body": "return 3 here"}],
        "commit": head,
    }
    assert not [p for p in problems if "Content Security Policy" in p or "page error" in p], problems
