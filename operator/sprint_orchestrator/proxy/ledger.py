"""The proxy's books: usage per task attempt and per sprint, and the budget decisions. No I/O.

Each metered response is followed as it is relayed (`ResponseMeter`) and its final usage is added to
its attempt's record once, when the response ends, so a retried 429 (no usage) or a repeated read can
never count twice. Budgets count *spent* tokens: the
known parts of input + cache read + cache creation + output. A cut-off stream whose output is unknown
still spends its known input, so budgets stay enforceable even when the record's total is null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..errors import InvalidInput, UsageParseError
from ..usage import UNKNOWN, ZERO, LiveUsage, TokenUsage
from .sockets import TaskKey

_SPENT_PARTS = ("input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens")


@dataclass(frozen=True)
class TaskBudget:
    """A task attempt's token budget. `used_before`: spent by earlier attempts, counted against it."""

    tokens: int | None = None  # None: no task budget
    used_before: int = 0


@dataclass
class _TaskBook:
    budget: TaskBudget
    usage: TokenUsage = ZERO
    spent: int = 0
    requests: int = 0
    refused: int = 0


@dataclass
class _SprintBook:
    tokens: int | None = None
    used_before: int = 0  # spent where no attempt record says (agent-reported usage without one)
    known: dict[TaskKey, int] = field(default_factory=dict)  # per attempt, from the Task statuses


@dataclass
class Ledger:
    _tasks: dict[TaskKey, _TaskBook] = field(default_factory=dict)
    _sprints: dict[str, _SprintBook] = field(default_factory=dict)

    def open(self, key: TaskKey, budget: TaskBudget) -> None:
        book = self._tasks.get(key)
        if book is None:
            self._tasks[key] = _TaskBook(budget)
        else:
            book.budget = budget  # a re-opened attempt keeps what it already spent
        self._sprints.setdefault(key.sprint_id, _SprintBook())

    def set_sprint_budget(
        self,
        sprint_id: str,
        tokens: int | None,
        used_before: int = 0,
        known: Mapping[TaskKey, int] | None = None,
    ) -> None:
        """The sprint's budget and what its attempts spent as their Task statuses say (`known`, e.g.
        attempts metered before an operator restart). An attempt this ledger also metered counts once,
        at the larger of the two figures."""
        book = self._sprints.setdefault(sprint_id, _SprintBook())
        book.tokens, book.used_before = tokens, used_before
        if known is not None:
            book.known = {key: value for key, value in known.items() if key.sprint_id == sprint_id}

    def sprint_spent(self, sprint_id: str) -> int:
        book = self._sprints.get(sprint_id) or _SprintBook()
        metered = {key: task.spent for key, task in self._tasks.items() if key.sprint_id == sprint_id}
        keys = metered.keys() | book.known.keys()
        return book.used_before + sum(max(metered.get(k, 0), book.known.get(k, 0)) for k in keys)

    def refusal(self, key: TaskKey) -> str | None:
        """Why a new request of `key` may not start (a sentence), or None when it may."""
        task, sprint = self._book(key), self._sprints[key.sprint_id]
        reason = None
        if task.budget.tokens is not None and task.spent + task.budget.used_before >= task.budget.tokens:
            used = task.spent + task.budget.used_before
            reason = (
                f"the token budget of task {key.task_id} is spent ({used} of {task.budget.tokens} tokens)"
            )
        elif sprint.tokens is not None and (used := self.sprint_spent(key.sprint_id)) >= sprint.tokens:
            reason = f"the token budget of sprint {key.sprint_id} is spent ({used} of {sprint.tokens} tokens)"
        if reason is not None:
            task.refused += 1
            return reason + "; raise the budget in the Sprint spec to continue"
        return None

    def record(self, key: TaskKey, usage: TokenUsage) -> TokenUsage:
        """Add one response's usage to the attempt and its sprint; return the attempt's new total."""
        task = self._book(key)
        spent = spent_tokens(usage)
        task.usage = task.usage + usage
        task.spent += spent
        task.requests += 1
        return task.usage

    def usage(self, key: TaskKey) -> TokenUsage:
        return self._book(key).usage

    def exceeded(self, key: TaskKey) -> bool:
        """True once the attempt has had a request refused for its task or sprint budget."""
        return self._book(key).refused > 0

    def requests(self, key: TaskKey) -> int:
        return self._book(key).requests

    def _book(self, key: TaskKey) -> _TaskBook:
        book = self._tasks.get(key)
        if book is None:
            raise InvalidInput(
                f"the metering proxy has no record of task attempt {key}: open its socket first"
            )
        return book


class ResponseMeter:
    """Follows one response body as it is relayed, in any chunking; `result()` once it has ended."""

    def __init__(self, fmt: str) -> None:
        self._live = LiveUsage(fmt)
        self._unreadable = False

    def feed(self, chunk: bytes) -> None:
        if self._unreadable:
            return
        try:
            self._live.feed(chunk)
        except UsageParseError:
            self._unreadable = True  # keep relaying; the record says partial

    def result(self) -> TokenUsage:
        """The response's usage; a response without readable final usage is partial, never zero."""
        if self._unreadable:
            return replace(self._live.current(), partial=True)
        try:
            return self._live.final()
        except UsageParseError:
            return UNKNOWN


def spent_tokens(usage: TokenUsage) -> int:
    return sum(getattr(usage, name) or 0 for name in _SPENT_PARTS)
