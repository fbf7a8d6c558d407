"""The invariants every chaos run must end with, checked against the real world after the run.

`collect()` reads what there is (the Sprints, Tasks and Events of a namespace from the API server, the
remote repository, the operator's clones, its state dir, its logs, Podman's containers); `check()` runs
every check and returns the violations, one clear sentence each (empty: all hold). Each check is a
plain function of the `World`, so a test can also run one alone. Used by tests/chaos/ and bench/chaos.py.

What is checked:
- main_fast_forward: the remote's main moved only forward (its reflog, when the remote keeps one);
- main_tested: every main the remote had after the run began is a Sprint's status.mainCommit whose
  integration results all passed and whose integratedCommit it contains (or a commit the test pushed);
- remote_agrees: a Sprint that says it pushed main (Pushed=True) has its mainCommit in the remote's main,
  and the remote's main is one that some Sprint reports (or the test's own);
- tasks_settled: each Task is in one known phase, its board column is that phase's, a finished Sprint
  has no Task in flight, a Completed Task is merged once and listed once in status.merged (once the
  Sprint has written it: with its move to Integrating);
- work_kept: every commit a task branch ever held (audit lines, Task status) is reachable from a ref,
  unless the retention policy let it go (an audit line with a `retention:` reason);
- events: every phase change the recorder saw (or, without one, each current phase) has its Event;
- refs_audited: every move in the clone's reflog of our refs has its audit line in an operator log;
- nothing_left: no task or gate container, task worktree, journal entry, lock file, proxy socket or
  temporary file survives the clean-up of a finished (or deleted) sprint;
- fsck: `git fsck` is clean in the remote and in every clone.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_PHASES = frozenset(
    {"Pending", "Ready", "Running", "Gating", "Merging", "Review", "Completed", "Failed", "Blocked"}
)
SPRINT_TERMINAL = frozenset({"Completed", "Partial", "Failed", "RolledBack"})
TASK_SETTLED = frozenset({"Completed", "Failed", "Blocked"})
COLUMN = {
    "Pending": "ready", "Ready": "ready", "Blocked": "ready", "Running": "in-progress",
    "Gating": "in-progress", "Merging": "in-progress", "Review": "review", "Completed": "completed",
    "Failed": "failed",
}  # fmt: skip
OUR_REFS = ("refs/heads/", "refs/sprint-orchestrator/")
PHASE_EVENT = "PhaseChanged"


@dataclass(frozen=True)
class Transition:
    kind: str  # Sprint | Task
    name: str
    old: str
    new: str


@dataclass
class World:
    namespace: str
    sprints: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    events: list[dict[str, Any]]
    remote: Path  # the target repository (bare)
    clones: list[Path]  # the operator's bare clones (trees/*/repo.git)
    state_dir: Path
    trees_dir: Path
    logs: list[Path]
    base_main: str  # the remote's main before the run
    foreign: set[str] = field(default_factory=set)  # commits the test itself put on main
    transitions: list[Transition] | None = None  # every phase change seen by a Recorder, if one ran
    containers: list[dict[str, Any]] = field(default_factory=list)  # Podman containers of our labels
    deleted: set[str] = field(default_factory=set)  # Sprints deleted during the run (name = sprint id)
    task_commits: set[str] = field(default_factory=set)  # task commits seen during the run (Recorder)


# --- helpers ----------------------------------------------------------------------------------------


def git(gitdir: Path, *args: str, check: bool = True) -> str:
    out = subprocess.run(
        ["git", "--git-dir", str(gitdir), *args], capture_output=True, text=True, check=False
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {gitdir}: {out.stderr.strip()}")
    return out.stdout


def is_ancestor(gitdir: Path, old: str, new: str) -> bool:
    result = subprocess.run(["git", "--git-dir", str(gitdir), "merge-base", "--is-ancestor", old, new])
    return result.returncode == 0


def has_commit(gitdir: Path, sha: str) -> bool:
    result = subprocess.run(
        ["git", "--git-dir", str(gitdir), "cat-file", "-e", f"{sha}^{{commit}}"], capture_output=True
    )
    return result.returncode == 0


def rev(gitdir: Path, ref: str) -> str | None:
    out = subprocess.run(
        ["git", "--git-dir", str(gitdir), "rev-parse", "--verify", "-q", ref], capture_output=True, text=True
    )
    return out.stdout.strip() or None


def reflog(gitdir: Path, ref: str) -> list[tuple[str, str]]:
    """(new value, message) of each update of `ref`, oldest first; [] without a reflog."""
    if not (gitdir / "logs" / ref).exists():
        return []
    out = git(gitdir, "log", "-g", "--format=%H%x09%gs", ref, check=False)
    rows = [line.split("\t", 1) for line in out.splitlines() if line]
    return [(r[0], r[1] if len(r) > 1 else "") for r in reversed(rows)]


def audit_lines(logs: Iterable[Path]) -> list[dict[str, Any]]:
    """The git engine's audit records (one JSON log line per ref move) of every operator log."""
    found = []
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            if '"git_ref"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a SIGKILLed operator's half line
            if isinstance(record, dict) and record.get("git_ref"):
                found.append(record)
    return found


def sprint_id(sprint: dict[str, Any]) -> str:
    return str((sprint.get("spec") or {}).get("sprintId") or sprint["metadata"]["name"])


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status(obj).get("conditions") or [] if c.get("type") == kind), {})


# --- the checks -------------------------------------------------------------------------------------


def main_fast_forward(world: World) -> list[str]:
    out = []
    head = rev(world.remote, "refs/heads/main")
    if head is None:
        return [f"the remote {world.remote} has no main"]
    if not is_ancestor(world.remote, world.base_main, head):
        out.append(f"the remote's main {head[:12]} does not contain the main the run began with "
                   f"{world.base_main[:12]}: main was moved by force")  # fmt: skip
    values = [sha for sha, _ in reflog(world.remote, "refs/heads/main")]
    for old, new in itertools.pairwise(values):
        if not is_ancestor(world.remote, old, new):
            out.append(f"the remote's main went from {old[:12]} to {new[:12]}, not a fast-forward (forced)")
    return out


def _mains_since_base(world: World) -> list[str]:
    values = [sha for sha, _ in reflog(world.remote, "refs/heads/main")]
    if world.base_main in values:
        values = values[values.index(world.base_main) + 1 :]
    elif values:
        values = values[-1:]  # no usable history: the current main only
    head = rev(world.remote, "refs/heads/main")
    if not values and head and head != world.base_main:
        values = [head]
    return [v for v in values if v != world.base_main]


def main_tested(world: World) -> list[str]:
    out = []
    by_main = {status(s).get("mainCommit"): s for s in world.sprints if status(s).get("mainCommit")}
    for main in _mains_since_base(world):
        if main in world.foreign:
            continue
        sprint = by_main.get(main)
        if sprint is None:
            out.append(f"the remote's main was {main[:12]}, which no Sprint reports as its mainCommit")
            continue
        name = sprint["metadata"]["name"]
        results = status(sprint).get("integration") or []
        failed = [r.get("command") for r in results if not r.get("passed")]
        if failed:
            out.append(f"sprint {name} moved main to {main[:12]} although integration tests failed: {failed}")
        integrated = status(sprint).get("integratedCommit")
        if not integrated:
            out.append(f"sprint {name} moved main to {main[:12]} with no integratedCommit (untested)")
        elif not is_ancestor(world.remote, integrated, main):
            out.append(f"sprint {name}'s main {main[:12]} lacks its tested commit {integrated[:12]}")
        phase = status(sprint).get("phase")
        if phase in ("Failed", "RolledBack"):
            out.append(f"sprint {name} is {phase} but the remote's main moved to its {main[:12]}")
    return out


def remote_agrees(world: World) -> list[str]:
    out = []
    head = rev(world.remote, "refs/heads/main") or ""
    reported = set()
    for sprint in world.sprints:
        st, name = status(sprint), sprint["metadata"]["name"]
        main = st.get("mainCommit")
        pushed = condition(sprint, "Pushed").get("status") == "True"
        if st.get("phase") in ("Completed", "Partial") and main and not pushed:
            out.append(f"sprint {name} is {st['phase']} with main {main[:12]} but Pushed is not True")
        if main and pushed:
            reported.add(main)
            if not has_commit(world.remote, main) or not is_ancestor(world.remote, main, head):
                out.append(f"sprint {name} says the remote's main is {main[:12]}; the remote's main is "
                           f"{head[:12]} and does not contain it")  # fmt: skip
    if head != world.base_main and head not in reported and head not in world.foreign:
        out.append(f"the remote's main {head[:12]} is no Sprint's reported (pushed) mainCommit")
    return out


def tasks_settled(world: World) -> list[str]:
    out = []
    sprints = {s["metadata"]["name"]: s for s in world.sprints}
    merge_counts: dict[str, dict[str, int]] = {}
    for task in world.tasks:
        name = task["metadata"]["name"]
        st = status(task)
        phase = st.get("phase") or "Pending"
        if phase not in TASK_PHASES:
            out.append(f"task {name} is in an unknown phase {phase!r}")
            continue
        if st.get("column") and st["column"] != COLUMN[phase]:
            out.append(f"task {name} is {phase} but on the board's {st['column']!r} column")
        sprint = sprints.get(str(task["spec"].get("sprintRef")))
        if sprint is None:
            continue
        sst = status(sprint)
        if sst.get("phase") in SPRINT_TERMINAL and phase not in TASK_SETTLED:
            out.append(f"task {name} is still {phase} in the finished sprint {sprint['metadata']['name']}")
        task_id = task["spec"]["taskId"]
        listed = (sst.get("merged") or []).count(task_id)
        if listed > 1:
            out.append(f"task {name} is listed {listed} times in its sprint's status.merged")
        if phase == "Completed" and not st.get("noChanges"):
            if not st.get("mergeCommit"):
                out.append(f"task {name} is Completed without a mergeCommit")
            # status.merged is written with the move to Integrating (from the sprint branch's history)
            if sst.get("merged") is not None and listed != 1:
                out.append(f"task {name} is Completed but listed {listed} times in status.merged")
            sid = sprint_id(sprint)
            counts = merge_counts.setdefault(sid, _merge_counts(world, sid))
            if counts.get(task_id, 0) != 1:
                out.append(f"task {name} was merged {counts.get(task_id, 0)} times into sprint/{sid}")
    return out


def _merge_counts(world: World, sid: str) -> dict[str, int]:
    """How many `Merge task X into sprint S` commits each task has on the sprint branch (any clone)."""
    for clone in world.clones:
        if rev(clone, f"refs/heads/sprint/{sid}"):
            subjects = git(clone, "log", "--format=%s", f"refs/heads/sprint/{sid}").splitlines()
            prefix, suffix = "Merge task ", f" into sprint {sid}"
            counts: dict[str, int] = {}
            for s in subjects:
                if s.startswith(prefix) and s.endswith(suffix):
                    task = s[len(prefix) : -len(suffix)]
                    counts[task] = counts.get(task, 0) + 1
            return counts
    return {}


def work_kept(world: World) -> list[str]:
    commits = set(world.task_commits)
    dropped: set[str] = set()  # what the retention policy let go on purpose (its audit lines say so)
    for record in audit_lines(world.logs):
        if str(record["git_ref"]).startswith("refs/heads/task/") and record.get("new"):
            commits.add(str(record["new"]))
        if str(record.get("reason") or "").startswith("retention:") and record.get("old"):
            dropped.add(str(record["old"]))
    for task in world.tasks:
        if status(task).get("commit"):
            commits.add(str(status(task)["commit"]))
    out = []
    repos = [*world.clones, world.remote]
    for sha in sorted(commits - dropped):
        holders = [r for r in repos if has_commit(r, sha)]
        if not holders:
            out.append(f"task commit {sha[:12]} is in no repository (lost)")
            continue
        refs = (git(r, "for-each-ref", "--contains", sha, "--count=1", check=False) for r in holders)
        if not any(line.strip() for line in refs) and not _within(holders, sha, dropped):
            out.append(f"task commit {sha[:12]} is reachable from no branch or salvage ref (lost)")
    return out


def _within(repos: list[Path], sha: str, dropped: set[str]) -> bool:
    """Whether `sha` is an ancestor of a commit the retention policy dropped (an earlier attempt's)."""
    return any(
        subprocess.run(
            ["git", "--git-dir", str(r), "merge-base", "--is-ancestor", sha, tip], capture_output=True
        ).returncode
        == 0
        for r in repos
        for tip in dropped
        if has_commit(r, tip)
    )


def events(world: World) -> list[str]:
    """Every phase change has its Event: a PhaseChanged Event on the object, "old -> new"."""
    seen: dict[tuple[str, str], set[str]] = {}
    for event in world.events:
        if event.get("reason") != PHASE_EVENT:
            continue
        obj = event.get("involvedObject") or {}
        seen.setdefault((str(obj.get("kind")), str(obj.get("name"))), set()).add(str(event.get("message")))
    out = []

    def has(kind: str, name: str, old: str, new: str) -> bool:
        messages = seen.get((kind, name), set())
        return any(m.startswith(f"{old} -> {new}") for m in messages)

    def reached(kind: str, name: str, phase: str) -> bool:
        return any(m.split(" (")[0].endswith(f"-> {phase}") for m in seen.get((kind, name), set()))

    if world.transitions is not None:
        for t in world.transitions:
            if t.old and not has(t.kind, t.name, t.old, t.new):
                out.append(f"{t.kind} {t.name} went {t.old} -> {t.new} with no {PHASE_EVENT} Event")
            elif not t.old and not reached(t.kind, t.name, t.new):  # seen across a gap of the recorder's
                out.append(f"{t.kind} {t.name} became {t.new} with no {PHASE_EVENT} Event for that move")
        return out
    for kind, objects in (("Sprint", world.sprints), ("Task", world.tasks)):
        for obj in objects:
            phase, name = status(obj).get("phase"), obj["metadata"]["name"]
            if phase and phase != "Pending" and not reached(kind, name, phase):
                out.append(f"{kind} {name} is {phase} with no {PHASE_EVENT} Event for that move")
    return out


def refs_audited(world: World) -> list[str]:
    audited = {(r["git_ref"], r.get("new")) for r in audit_lines(world.logs)}
    out = []
    for clone in world.clones:
        refs = git(clone, "for-each-ref", "--format=%(refname)").split()
        for ref in refs:
            if not ref.startswith(OUR_REFS):
                continue
            for new, message in reflog(clone, ref):
                if message.startswith("clone:"):
                    continue
                if (ref, new) not in audited:
                    out.append(f"{ref} moved to {new[:12]} in {clone} ({message!r}) with no audit line")
    return out


def _finished_ids(world: World) -> set[str]:
    done = {sprint_id(s) for s in world.sprints if status(s).get("phase") in SPRINT_TERMINAL}
    return done | world.deleted


def nothing_left(world: World) -> list[str]:
    out = []
    finished = _finished_ids(world)
    live = {sprint_id(s) for s in world.sprints} - finished
    for c in world.containers:
        labels = c.get("Labels") or {}
        sid = labels.get("sprintorchestrator.dev/sprint")
        name = (c.get("Names") or ["?"])[0]
        if sid in finished and labels.get("sprintorchestrator.dev/role") == "task":
            out.append(f"container {name} of the finished sprint {sid} is still there ({c.get('State')})")
        if labels.get("sprintorchestrator.dev/role") == "oneshot":
            out.append(f"gate container {name} was left behind ({c.get('State')})")
    for clone in world.clones:
        root = clone.parent
        listing = git(clone, "worktree", "list", "--porcelain")
        for entry in listing.split("\n\n"):
            path = next((ln[9:] for ln in entry.splitlines() if ln.startswith("worktree ")), "")
            if not path or Path(path) == clone:
                continue
            if "prunable" in entry:
                out.append(f"worktree {path} is registered but its directory is gone (prunable)")
            rel = Path(path).relative_to(root) if Path(path).is_relative_to(root) else Path(path)
            parts = rel.parts
            if parts[:1] == ("tasks",) and len(parts) > 1 and parts[1] not in live:
                out.append(f"task worktree {path} of the finished sprint {parts[1]} is still there")
            if parts[:1] == ("sprints",) and len(parts) > 1 and parts[1] in world.deleted:
                out.append(f"sprint worktree {path} of the deleted sprint {parts[1]} is still there")
        for sprint_dir in (root / "tasks").glob("*"):
            held = sorted(str(p.relative_to(sprint_dir)) for p in sprint_dir.rglob("*"))
            if sprint_dir.name in finished and held:
                example = ", ".join(held[:3])
                out.append(f"{sprint_dir} of the finished sprint {sprint_dir.name} still holds {example}")
        for intent in (root / "journal").glob("*"):
            out.append(f"journal entry {intent} (an intent record) was left behind")
        for lock in clone.rglob("*.lock"):
            out.append(f"git lock file {lock} was left behind")
        for partial in root.glob("*.partial-*"):
            out.append(f"partial clone {partial} was left behind")
    llm = world.state_dir / "run" / "llm"
    if not live and llm.exists():
        for socket_dir in llm.iterdir():
            out.append(f"proxy socket directory {socket_dir} was left behind")
    for tmp in (world.state_dir / "tmp", world.state_dir / "run" / "tmp"):  # TMPDIR, tempdirs.py
        for leftover in tmp.iterdir() if tmp.exists() else ():
            out.append(f"temporary file {leftover} was left behind (no operator process owns it)")
    for stray in world.state_dir.rglob("*"):
        if stray.name.endswith((".tmp", ".partial")) or ".tmp-" in stray.name:
            out.append(f"temporary file {stray} was left behind")
    return out


def fsck(world: World) -> list[str]:
    out = []
    for repo in [world.remote, *world.clones]:
        result = subprocess.run(
            ["git", "--git-dir", str(repo), "fsck", "--full", "--strict", "--no-progress"],
            capture_output=True,
            text=True,
        )
        bad = [ln for ln in result.stderr.splitlines() if not ln.startswith(("dangling", "Checking"))]
        damage = any(w in "\n".join(bad) for w in ("error", "missing", "broken", "corrupt"))
        if result.returncode != 0 or damage:
            out.append(f"git fsck of {repo} failed ({result.returncode}): {' | '.join(bad[:5])}")
    return out


CHECKS: dict[str, Callable[[World], list[str]]] = {
    "main_fast_forward": main_fast_forward,
    "main_tested": main_tested,
    "remote_agrees": remote_agrees,
    "tasks_settled": tasks_settled,
    "work_kept": work_kept,
    "events": events,
    "refs_audited": refs_audited,
    "nothing_left": nothing_left,
    "fsck": fsck,
}


def check(world: World, skip: Iterable[str] = ()) -> list[str]:
    """Every violation of every check (but those in `skip`), prefixed by the check's name."""
    out: list[str] = []
    for name, fn in CHECKS.items():
        if name in skip:
            continue
        try:
            found = fn(world)
        except Exception as exc:  # a check that cannot run is a violation, never a pass
            found = [f"the check could not run: {type(exc).__name__}: {exc}"]
        out.extend(f"{name}: {v}" for v in found)
    return out


def assert_invariants(world: World, skip: Iterable[str] = ()) -> None:
    violations = check(world, skip)
    assert not violations, f"{len(violations)} invariant violation(s):\n" + "\n".join(violations[:40])


# --- collecting the world ---------------------------------------------------------------------------


def containers(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Podman containers (any state) carrying every label of `labels`."""
    args = ["podman", "ps", "-a", "--format", "json"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}" if value else f"label={key}"]
    env = dict(os.environ)
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    return list(json.loads(out or "[]"))


def collect(
    kube: Any,
    namespace: str,
    remote: Path,
    state_dir: Path,
    logs: list[Path],
    base_main: str,
    trees_dir: Path | None = None,
    recorder: Any = None,
    foreign: Iterable[str] = (),
    deleted: Iterable[str] = (),
) -> World:
    """Read the world after a run: `kube` is a sprint_orchestrator.kube.Kube on the test's cluster."""
    import hashlib

    from sprint_orchestrator.kube import SPRINTS, TASKS
    from sprint_orchestrator.runtime import tenant_of

    sprints = kube.list_objects(SPRINTS, namespace)
    tasks = kube.list_objects(TASKS, namespace)
    raw = kube.core.list_namespaced_event(namespace)
    events = [kube.api_client.sanitize_for_serialization(e) for e in raw.items]
    trees = trees_dir or state_dir / "trees"
    owner = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    found = containers({"sprintorchestrator.dev/owner": owner})  # gate containers of this operator
    for name in sorted({s["metadata"]["name"] for s in sprints} | set(deleted)):
        tenant = tenant_of(namespace, name)  # task containers of this Sprint resource
        found += containers({"sprintorchestrator.dev/tenant": tenant, "sprintorchestrator.dev/role": "task"})
    return World(
        namespace=namespace,
        sprints=sprints,
        tasks=tasks,
        events=events,
        remote=remote,
        clones=sorted(trees.glob("*/repo.git")),
        state_dir=state_dir,
        trees_dir=trees,
        logs=list(logs),
        base_main=base_main,
        foreign=set(foreign),
        transitions=recorder.transitions() if recorder is not None else None,
        containers=found,
        deleted=set(deleted),
        task_commits=recorder.commits() if recorder is not None else set(),
    )
