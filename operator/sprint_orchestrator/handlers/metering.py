"""A task attempt's model access through the operator's metering proxy.

When a team reaches a model API through the proxy (`TeamLaunch.proxy`), the runner opens the attempt's
own socket with its budgets (`open_attempt`), bind-mounts the socket's directory into the container
(`MeteredAttempt.mount`), reads the growing usage while it runs, and afterwards records the proxy's
count as the authoritative usage (`proxy_tokens`, source "proxy") next to what the agent CLI reported
about itself (`agentReported`): the difference is shown, never hidden.

On the pods runtime (`runtime.proxy_socket` set) there is no socket to mount: the proxy serves task Pods
on TCP and the attempt gets a credential instead (proxy/tcp.py); `MeteredAttempt.wire` runs the agent CLI
itself against the proxy's address, the credential passed as a secret (the Pod's Secret).

Budgets: the task's is `estimatedTokens x policy.tokenBudgetFactor` (none without an estimate); the
sprint's is `spec.tokenBudget` (else the config's default), less what the sprint's tasks spent outside
the proxy. A request over either budget is refused by the proxy in the provider's error format, the
agent stops, and the task fails with reason BudgetExceeded.

Restarts: the attempt's running total is journaled under the operator's run dir (out of every
container's reach) at each metered response. An operator that re-attaches to a running container
seeds its fresh ledger from the journal, and the socket reappears in the directory the container
already has mounted, so the usage stays exact across restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, MissingApiKey
from ..proxy import CONTAINER_SOCKET_DIR, TaskBudget, TaskKey, tcp
from ..runtime import Mount
from ..teams import TeamLaunch
from ..teams.keys import missing_key_message
from ..usage import ModelUsage, TokenUsage
from ..usage.record import with_counts


@dataclass
class MeteredAttempt:
    """One attempt's open socket on the proxy; `changed` is set whenever the proxy metered a response."""

    proxy: Any
    sprint_id: str
    task_id: str
    attempt: int
    socket: Path | None
    journal: Path
    budget: TaskBudget = field(default_factory=TaskBudget)
    sprint_tokens: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""  # on TCP (task Pods): the proxy's address, and the attempt's credential
    credential: str = field(default="", repr=False)

    @property
    def mount(self) -> Mount:
        assert self.socket is not None, "a TCP attempt has no socket to mount"
        return Mount(self.socket.parent, CONTAINER_SOCKET_DIR, read_only=True)

    def wire(self, launch: TeamLaunch) -> tuple[list[str], dict[str, str], list[Mount], dict[str, str]]:
        """(command, environment, mounts, secrets) of the attempt's container: under the forwarder with the
        socket mounted, or on TCP the CLI itself with its credential as a secret."""
        if self.socket is not None:
            return list(launch.command), dict(launch.environment), [*launch.mounts, self.mount], {}
        command, env = tcp.direct_launch(launch.command, launch.environment, self.base_url)
        return command, env, list(launch.mounts), tcp.key_secrets(self.credential)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.sprint_id, self.task_id, self.attempt)

    def on_usage(self, total: TokenUsage) -> None:
        """The proxy metered a response: journal the new running total and wake the live loop."""
        write_journal(self.journal, total)
        self.changed.set()

    def usage(self) -> TokenUsage:
        return self.proxy.usage_for(*self.key)  # type: ignore[no-any-return]

    def exceeded(self) -> bool:
        return bool(self.proxy.budget_exceeded(*self.key))

    def refusal(self) -> str | None:
        """Why the task must fail BudgetExceeded (the proxy refused one of its requests), or None."""
        if not self.exceeded():
            return None
        used = self.usage().total_tokens
        return (
            f"token budget exceeded: the metering proxy refused a model request after "
            f"{'an unknown number of' if used is None else used} tokens (task budget: "
            f"{self.budget.tokens or 'none'}, sprint budget: {self.sprint_tokens or 'none'}); raise "
            "spec.policy.tokenBudgetFactor, the task's estimatedTokens or spec.tokenBudget, then retry"
        )

    async def close(self, keep: bool) -> None:
        if self.socket is None:  # revoked; kept on disk (never in a usable form) only for a restart
            self.proxy.close_task_credential(*self.key, keep=keep)
        else:
            await self.proxy.close_task_socket(*self.key, keep_directory=keep)
        if not keep:
            self.journal.unlink(missing_ok=True)


def journal_path(run_dir: Path, key: tuple[str, str, int]) -> Path:
    return run_dir / "llm-usage" / f"{key[0]}.{key[1]}.{key[2]}.json"


def write_journal(path: Path, total: TokenUsage) -> None:
    """The running total as exact integers (no cost: the proxy has none), replaced atomically."""
    doc = {
        "counts": list(total.values()),
        "byModel": {name: list(u.values()) for name, u in total.by_model.items()},
        "partial": total.partial,
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def read_journal(path: Path) -> TokenUsage | None:
    """The journaled running total, or None when there is none (or it cannot be read)."""
    try:
        doc = json.loads(path.read_text())
        by_model = {name: with_counts(ModelUsage(), counts, None) for name, counts in doc["byModel"].items()}
        return with_counts(TokenUsage(by_model=by_model, partial=bool(doc["partial"])), doc["counts"], None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def open_attempt(
    ctx: Any,
    provider: str,
    team_type: str,
    key: tuple[str, str, int],
    budgets: tuple[TaskBudget, int | None, Mapping[TaskKey, int]],
) -> MeteredAttempt:
    """Open the attempt's socket with its task budget and set the sprint's: (tokens, what each of its
    attempts spent as the Task statuses say)."""
    if not ctx.settings.api_keys.get(provider):
        raise MissingApiKey(missing_key_message(provider, team_type))
    proxy = await ctx.get_proxy()
    task, sprint_tokens, known = budgets
    proxy.set_sprint_budget(key[0], sprint_tokens, known=known)
    journal = journal_path(ctx.settings.run_dir, key)
    fresh = not _known(proxy, key)
    listener = getattr(ctx.runtime, "proxy_socket", None)  # the runner got the runtime already
    if listener is not None:  # task Pods: TCP and a credential (the one its Pod has, after a restart)
        base_url = await proxy.listen_tcp(listener, getattr(ctx.runtime, "proxy_url", None))
        resumed = proxy.resume_task_credential(*key, task) if fresh else None
        credential = resumed or proxy.open_task_credential(*key, task)
        socket = None
    else:
        base_url, credential = "", ""
        socket = Path(await proxy.open_task_socket(*key, task))
    earlier = read_journal(journal) if fresh else None
    if earlier is not None:  # re-attached after a restart: what the attempt spent before counts
        proxy.ledger.record(TaskKey(*key), earlier)
    metered = MeteredAttempt(
        proxy, *key, socket=socket, journal=journal, budget=task, sprint_tokens=sprint_tokens,
        base_url=base_url, credential=credential,
    )  # fmt: skip
    ctx.usage_listeners[key] = metered.on_usage
    return metered


async def close_attempt(ctx: Any, metered: MeteredAttempt, keep: bool = False) -> None:
    """Stop the attempt's model access. `keep`: the operator is stopping while the container may run
    on: keep the socket directory and the journal for the operator that re-attaches, and keep
    journaling the responses still in flight until the proxy stops."""
    if not keep:
        ctx.usage_listeners.pop(metered.key, None)
    await metered.close(keep)


def _known(proxy: Any, key: tuple[str, str, int]) -> bool:
    try:
        proxy.usage_for(*key)
    except InvalidInput:
        return False
    return True
