"""The board in real Chromium (Debian's package, driven by Playwright; no browser download):
live updates, Retry, the reporting view and the real Kaiban Board. Screenshots go to
.artifacts/screenshots/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _board import TOKEN, create_sprint_with_tasks, dashboard, set_status, sprint_body, wait_until
from conftest import REPO, kubectl
from localcluster import LocalCluster
from sprint_orchestrator import ANNOTATION_RETRY
from sprint_orchestrator.kube import TASKS, Kube

pytestmark = [pytest.mark.browser, pytest.mark.cluster]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / ".artifacts" / "screenshots"
KAIBAN_APP = REPO / "operator" / "sprint_orchestrator" / "web" / "static" / "kaiban" / "app.js"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run hack/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)  # a bound for a loaded machine, not a speed goal
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def card(column: str, tid: str) -> str:
    return f'.column[data-column="{column}"] .card[data-task="{tid}"]'


def test_the_board_moves_cards_live_as_task_status_changes(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("live-1", tasks=3, tokenBudget=20000))
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/board/live-1")
        page.wait_for_selector(card("ready", "t0"))
        assert page.text_content("#title") == "Sprint live-1: Name of live-1"
        set_status(
            kube,
            namespace,
            "live-1",
            "t0",
            {
                "column": "in-progress",
                "containerHealth": "running",
                "startTime": "2026-01-01T12:00:00Z",
                "tokens": {"actual": 800},
            },
        )
        page.wait_for_selector(card("in-progress", "t0"), timeout=60_000)
        assert "800 / 1000 tok" in page.text_content(card("in-progress", "t0"))
        assert page.text_content("#active") == "1"
        set_status(
            kube,
            namespace,
            "live-1",
            "t0",
            {"column": "completed", "containerHealth": "removed", "completionTime": "2026-01-01T12:01:00Z"},
        )
        page.wait_for_selector(card("completed", "t0"), timeout=60_000)
        assert page.text_content("#progress-text") == "1/3 tasks"
        shot(page, "board-live")


def test_a_failed_card_is_red_with_its_error_and_retry_requests_a_retry(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("retry-b", tasks=2))
    set_status(
        kube,
        namespace,
        "retry-b",
        "t1",
        {
            "column": "failed",
            "error": "container timed out after 60 s",
            "attempt": 1,
            "nextRetryAt": "2099-01-01T00:00:00Z",
        },
    )
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/board/retry-b")
        failed = page.wait_for_selector(card("failed", "t1"))
        assert "container timed out after 60 s" in failed.text_content()
        assert "automatic retry in" in failed.text_content()
        color = page.eval_on_selector(card("failed", "t1"), "e => getComputedStyle(e).backgroundColor")
        assert color == "rgb(253, 236, 234)"
        shot(page, "board-failed")
        page.evaluate(f"localStorage.setItem('sprintctl-token', '{TOKEN}')")
        page.click(f"{card('failed', 't1')} button.retry")
        page.wait_for_selector(f"{card('failed', 't1')} .requested:has-text('Retry requested')")
        annotations = wait_until(
            lambda: ((kube.get(TASKS, namespace, "retry-b-t1") or {}).get("metadata") or {}).get(
                "annotations"
            ),
            what="the retry annotation",
        )
        assert ANNOTATION_RETRY in annotations


def test_the_drill_down_and_the_report_show_gates_and_tokens(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("rep-1", tasks=2))
    set_status(
        kube,
        namespace,
        "rep-1",
        "t0",
        {
            "phase": "Completed",
            "column": "completed",
            "completionTime": "2026-01-01T12:01:00Z",
            "startTime": "2026-01-01T12:00:00Z",
            "results": {"summary": "# Results\nAll words counted."},
            "tokens": {
                "actual": 1500,
                "byCategory": {"implementation": 1200, "testing": 300},
                "byModel": {"m-1": 1500},
            },
            "gates": [{"name": "pytest", "passed": True, "exitCode": 0}],
        },
    )
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/board/rep-1")
        page.click(card("completed", "t0"))
        page.wait_for_selector("#drill[open]")
        assert "All words counted." in page.text_content("#drill-results")
        assert "passed" in page.text_content("#drill-gates")
        assert "category implementation" in page.text_content("#drill-tokens")
        shot(page, "board-drill-down")
        page.goto(f"{base}/report/rep-1")
        page.wait_for_selector("body[data-ready='1']")
        assert page.get_attribute('#by-category .bar[data-label="implementation"]', "data-value") == "1200"
        assert page.get_attribute('#gates .bar[data-label="pytest"]', "data-value") == "1"
        assert "Outcomes: 1 completed, 1 pending ·" in page.text_content("#summary")
        shot(page, "report")


def test_the_real_kaiban_board_renders_the_sprint_cards_and_follows_them(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    if not KAIBAN_APP.exists():
        subprocess.run(["bash", str(REPO / "hack" / "build-kaiban-board.sh")], check=True, timeout=900)
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("kb-1", tasks=2))
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/kaiban/kb-1")
        try:
            page.wait_for_selector("text=Task 0 [priority high", timeout=60_000)
        except Exception as exc:
            shot(page, "kaiban-board-failed")
            raise AssertionError(
                f"no cards on the Kaiban Board; errors: {errors}, console: {console}"
            ) from exc
        page.wait_for_selector("text=Task 1 [priority medium", timeout=60_000)
        page.wait_for_selector("body[data-board-tab='1']", timeout=60_000)
        page.wait_for_selector("text=To Do", timeout=60_000)
        assert page.evaluate("window.KAIBAN_TELEMETRY_OPT_OUT") is True
        set_status(
            kube,
            namespace,
            "kb-1",
            "t0",
            {
                "column": "completed",
                "startTime": "2026-01-01T12:00:00Z",
                "completionTime": "2026-01-01T12:00:30Z",
            },
        )
        page.wait_for_function(
            "() => window.kaibanStore && window.kaibanStore.getState().tasks[0].status === 'DONE'",
            timeout=60_000,
        )
        shot(page, "kaiban-board")
        broken = page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0 "
            "|| !i.src.startsWith(location.origin)).map(i => i.src)"
        )
        assert page.evaluate("document.images.length") > 0
    assert broken == [], f"images that did not load from the dashboard: {broken}"
    assert errors == []


@pytest.mark.podman
def test_the_board_follows_a_real_demo_sprint_to_completion(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    """The operator runs examples/sprint.yaml in real Podman containers; the board shows it live."""
    from _board import demo_sprint, operator_config
    from _e2e import apply, operator_process

    state = tmp_path / "state"
    manifest = demo_sprint(tmp_path, REPO)
    with (
        operator_process(cluster, namespace, state, tmp_path / "op.log", **operator_config(tmp_path)),
        dashboard(cluster.kubeconfig, namespace, tmp_path) as base,
    ):
        # Suspended until the page shows it waiting: the demo sprint runs in seconds, faster than a page
        # load can be counted on to catch its first column.
        apply(cluster, namespace, {**manifest, "spec": {**manifest["spec"], "suspend": True}})
        page.goto(f"{base}/board/textstats-1")
        page.wait_for_selector(card("ready", "words"), timeout=60_000)
        kubectl(cluster, "-n", namespace, "patch", "sprint", "textstats-1", "--type=merge",
                "-p", '{"spec": {"suspend": false}}')  # fmt: skip
        page.wait_for_selector('.column[data-column="in-progress"] .card', timeout=300_000)
        shot(page, "demo-running")
        page.wait_for_selector('.column[data-column="completed"] .card[data-task="docs"]', timeout=900_000)
        assert page.text_content("#progress-text") == "6/6 tasks"
        assert int(page.get_attribute("#board", "data-version") or 0) > 6  # pushed, not reloaded
        shot(page, "demo-completed")
        page.click(card("completed", "words"))
        page.wait_for_selector("#drill[open]")
        assert "(no RESULTS.md yet)" not in page.text_content("#drill-results")
        assert "passed" in page.text_content("#drill-gates")
        page.wait_for_function("document.getElementById('drill-log').textContent.length > 0", timeout=60_000)
        shot(page, "demo-drill-down")
        page.goto(f"{base}/kaiban/textstats-1")
        page.wait_for_function(
            "() => window.kaibanStore && window.kaibanStore.getState().tasks.every(t => t.status === 'DONE')",
            timeout=60_000,
        )
        shot(page, "demo-kaiban-board")


def test_the_api_docs_render_from_this_origin_alone(
    cluster: LocalCluster, namespace: str, tmp_path: Path, page: Any
) -> None:
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        page.goto(f"{base}/docs")
        try:
            page.wait_for_selector("text=Sprint Orchestrator dashboard", timeout=30_000)
        except Exception as exc:
            shot(page, "api-docs-failed")
            raise AssertionError(f"Swagger UI did not render: {problems}, requests: {requests}") from exc
        page.wait_for_selector('[data-path="/api/sprints"]', timeout=10_000)
        shot(page, "api-docs")
    assert requests and all(url.startswith(base) for url in requests), requests
