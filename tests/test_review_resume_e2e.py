"""Request changes on a task of the REAL Claude Code CLI: the next attempt resumes its session.

The real kube-apiserver, the operator as a process, real git, a network-less Podman container of the
agent image, the Anthropic stand-in behind the operator's metering proxy. Attempt 1 writes OUTPUT.md,
which is outside the task's files, so the task waits in Review. A reviewer requests changes with a
comment; attempt 2 runs `claude --resume <attempt 1's session id>` with the review as its prompt, and
the stand-in receives the whole earlier conversation followed by the review. The transcript travels
in the operator's state, never in git; the proxy meters both rounds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, operator_env, operator_process, wait_for
from _proxy import REAL_KEY, expected_usage
from _standin_anthropic import OpenAIStandIn
from localcluster import LocalCluster
from test_agent_e2e import SPRINT, InspectWatcher, ThreadedStandIn, agent_image, agent_sprint
from test_lifecycle_e2e import by_id, config, events_in, seed_repository
from test_review_e2e import sprintctl

pytestmark = [pytest.mark.cluster, pytest.mark.podman, pytest.mark.timeout(1500)]
__all__ = ["agent_image"]  # the fixture
COMMENT = "Say hello to the reviewers too, please."


def in_review(cluster: LocalCluster, namespace: str, attempt: int) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (t := by_id(cluster, namespace, SPRINT).get("greet", {})).get("phase") == "Review"
                and t.get("attempt") == attempt
                and t
            ),
            timeout=900,
            what=f"task greet in Review on attempt {attempt}",
        )
    )


def texts(message: dict[str, Any]) -> list[str]:
    """A message's blocks as comparable strings (the CLI's own system reminders left out)."""
    content = message.get("content")
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    out = []
    for block in blocks:
        if block.get("type") == "text" and not str(block.get("text")).startswith("<system-reminder>"):
            out.append(str(block.get("text")))
        elif block.get("type") == "tool_use":
            out.append(f"tool_use:{block.get('name')}:{json.dumps(block.get('input'))}")
        elif block.get("type") == "tool_result":
            out.append(f"tool_result:{block.get('tool_use_id')}")
    return out


def test_changes_requested_resume_the_claude_code_session_with_the_review_as_its_next_prompt(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    manifest = agent_sprint(repo, agent_image)
    manifest["spec"]["tasks"][0]["filesToModify"] = ["GREETING.md"]  # OUTPUT.md: out of scope, Review
    state = tmp_path / "state"
    with ThreadedStandIn() as standin:
        settings = {**config(tmp_path), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
                    "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        env = {**operator_env(cluster, state), **settings}
        with (
            InspectWatcher(cluster, namespace) as watcher,
            operator_process(cluster, namespace, state, tmp_path / "op.log", **settings),
        ):
            apply(cluster, namespace, manifest)
            first = in_review(cluster, namespace, 1)
            rounds_1 = len(standin.requests)
            session = first["session"]
            assert (session["cli"], session["attempt"]) == ("claude-code", 1), first
            assert session.get("resumedFrom") is None
            sprintctl(
                env, "request-changes", SPRINT, "greet", "-n", namespace, "--by", "alice",
                "-m", "OUTPUT.md is fine, but the greeting is short.", "-c", f"OUTPUT.md:1={COMMENT}",
            )  # fmt: skip
            second = in_review(cluster, namespace, 2)
            requests = list(standin.requests)
            served = list(standin.served)
            seen = dict(watcher.seen)

    # attempt 2 ran `claude -p <review> --resume <attempt 1's session>` and kept that session
    assert {k: second["session"][k] for k in ("cli", "id", "attempt", "resumedFrom")} == {
        "cli": "claude-code", "id": session["id"], "attempt": 2, "resumedFrom": 1
    }  # fmt: skip
    commands = [json.loads(text)[0]["Config"]["Cmd"] for text in seen.values()]
    resumed = [c for c in commands if "--resume" in c]
    assert len(commands) == 2 and len(resumed) == 1, commands
    assert resumed[0][resumed[0].index("--resume") + 1] == session["id"]
    prompt = resumed[0][resumed[0].index("-p") + 1]
    assert COMMENT in prompt and "OUTPUT.md:1" in prompt

    # the stand-in saw the earlier conversation, then the review, in attempt 2's first request
    assert rounds_1 >= 3 and len(requests) > rounds_1
    earlier = [texts(m) for m in requests[rounds_1 - 1]["messages"]]
    now = [texts(m) for m in requests[rounds_1]["messages"]]
    assert now[: len(earlier)] == earlier, "attempt 2 did not carry attempt 1's conversation"
    flat = [t for m in now for t in m]
    assert any(t.startswith("tool_use:Read:") and "TASK.md" in t for t in flat)
    assert any(t.startswith("tool_use:Write:") and "OUTPUT.md" in t for t in flat)
    assert "Finished: OUTPUT.md written." in flat  # attempt 1's last answer
    assert len(now) == len(earlier) + 2 and any(COMMENT in t for t in now[-1]), now[len(earlier) :]

    # the proxy metered both rounds, attempt by attempt
    expected = expected_usage(served)
    by_attempt = second.get("tokensByAttempt") or {}
    assert by_attempt.get("1") and second["tokens"]["source"] == "proxy"
    assert by_attempt["1"] + second["tokens"]["actual"] == expected.total_tokens
    # the CLI reports its whole session; the Task shows what it said for this attempt alone
    assert second["tokens"]["agentReported"] == second["tokens"]["actual"], second["tokens"]

    # the transcript is in the operator's state, not in git nor the artifacts
    kept = state / "sessions" / namespace / SPRINT / "greet" / "transcript.jsonl"
    assert session["id"] in kept.read_text() and COMMENT in kept.read_text()
    for task in (first, second):
        assert task["changedFiles"] == ["OUTPUT.md"] and task["outOfScope"] == ["OUTPUT.md"], task
    assert not list(Path(second["artifactsPath"]).rglob("*.jsonl"))
    reasons = [e["reason"] for e in events_in(cluster, namespace)]
    assert "SessionResumed" in reasons and "SessionNotResumed" not in reasons


def test_changes_requested_resume_the_codex_thread_with_the_review_as_its_next_prompt(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    """Codex (the OpenAI stand-in only answers, so attempt 1 changes nothing and waits in Review):
    attempt 2 runs `codex exec resume <thread> <review>` and the stand-in's request carries attempt 1's
    prompt and answer, then the review."""
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    state = tmp_path / "state"
    with ThreadedStandIn(OpenAIStandIn()) as standin:
        settings = {**config(tmp_path), "SPRINT_ORCHESTRATOR_OPENAI_URL": standin.url,
                    "OPENAI_API_KEY": REAL_KEY}  # fmt: skip
        env = {**operator_env(cluster, state), **settings}
        with (
            InspectWatcher(cluster, namespace) as watcher,
            operator_process(cluster, namespace, state, tmp_path / "op.log", **settings),
        ):
            apply(cluster, namespace, agent_sprint(repo, agent_image, team="codex"))
            first = in_review(cluster, namespace, 1)
            rounds_1 = len(standin.requests)
            sprintctl(env, "request-changes", SPRINT, "greet", "-n", namespace, "-m", COMMENT)
            second = in_review(cluster, namespace, 2)
            requests = list(standin.requests)
            seen = dict(watcher.seen)
    thread = first["session"]["id"]
    assert first["session"]["cli"] == "codex" and first["reason"] == "NoChanges", first
    assert {k: second["session"][k] for k in ("cli", "id", "attempt", "resumedFrom")} == {
        "cli": "codex", "id": thread, "attempt": 2, "resumedFrom": 1
    }  # fmt: skip
    commands = [json.loads(text)[0]["Config"]["Cmd"] for text in seen.values()]
    (resumed,) = [c for c in commands if "resume" in c]
    assert resumed[resumed.index("resume") :][-2:][0] == thread and COMMENT in resumed[-1]
    assert rounds_1 >= 1 and len(requests) > rounds_1
    said = [json.dumps(item.get("content")) for item in requests[rounds_1]["input"]]
    first_prompt = next(i for i, s in enumerate(said) if "Read TASK.md" in s)
    answer = next(i for i, s in enumerate(said) if "Hello from the stand-in." in s)
    review = next(i for i, s in enumerate(said) if COMMENT in s)
    assert first_prompt < answer < review, said
