"""Benchmark: sprints run on while faults are injected at random, then every invariant is checked.

The local control plane, the operator as a real process, a target repository served by `git daemon`
(so its pre-receive hook runs), real Podman containers running the demo team. Each sprint has a
dependency (`dep` after `base`), a conflict (`left` and `right` write the same file differently: one
merges, the other fails with Conflict) and a failing gate (`gate` waits in Review; the bench approves it,
as a human would). First one sprint runs calm (the baseline), then sprints run one after another while a
fault thread injects, every 0.5-4 s, one of:

    kill       SIGKILL of the operator's process group at a random moment, restarted at once
    pause      SIGSTOP of the operator for 1-5 s, then SIGCONT
    refuse     the remote's pre-receive hook refuses the next 1-3 pushes
    container  a running task container of the sprint removed by hand (podman rm -f)
    apiserver  the kube-apiserver stopped for 1-5 s and started again (same port, certificates, etcd data)
    podman     SIGKILL of the operator's Podman API service (task containers run on under conmon; the
               operator starts the service again at its next Podman call)

(after a kill or an apiserver restart, the next fault waits until the operator made progress, at most
90 s) until `--faults N` are injected; the sprint under way then finishes undisturbed, the operator stops, and
tests/chaos/invariants.py checks the whole run. Figures: faults injected (by kind), sprints converged
(ended Completed or Partial), invariant violations (goal 0), errors the operator logged that no injected
fault explains (tests/_oplog.py, the e2e tests' oracle; goal 0), the median recovery time after a kill
(kill -> the next phase change any Sprint or Task makes) and after an apiserver restart, the calm
sprint's time beside the median sprint time under faults, and the total time.

    .venv/bin/python bench/chaos.py --faults 200      # last line: one JSON object
    .venv/bin/python bench/chaos.py --faults 20 --kinds apiserver,podman   # only these kinds
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for extra in ("hack", "tests", "tests/chaos"):
    sys.path.insert(0, str(REPO / extra))

from invariants import check, collect  # noqa: E402
from recorder import Recorder  # noqa: E402

import _procs  # noqa: E402
from _oplog import unexpected_errors  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402
from sprint_orchestrator.kube import SPRINTS, Kube, unreachable  # noqa: E402
from sprint_orchestrator.runtime import tenant_of  # noqa: E402

NAMESPACE = "chaos"
IMAGE = "localhost/sprint-orchestrator/base:bookworm"
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
SPRINT_TIMEOUT_S = 1200.0
RECOVERY_WAIT_S = 90.0
KINDS = {"kill": 35, "pause": 15, "refuse": 15, "container": 20, "apiserver": 8, "podman": 7}  # weights
# kopf's own words while the apiserver is stopped (a fault we inject): its watches and calls retried.
EXPECTED_ERRORS = (
    r"^error: Request attempt #\d+/\d+ failed; will retry: .*(ClientConnectorError|ServerDisconnectedError"
    r"|before all known HTTP paths have been installed)",
)
SPRINTCTL = str(Path(sys.executable).parent / "sprintctl")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sh(*args: str, **kwargs: Any) -> str:
    return str(subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout).strip()


class World:
    """The cluster, the remote, the operator process and its restarts."""

    def __init__(self, tmp: Path, local: LocalCluster) -> None:
        self.tmp, self.local = tmp, local
        self.state = tmp / "state"
        (self.state / "tmp").mkdir(parents=True)
        self.oplog = tmp / "operator.log"
        self.recipes = tmp / "recipes"
        self.remote, self.url, self.daemon = self._remote()
        self.refusals = tmp / "refusals"  # the hook refuses while this holds a number > 0
        self.base_main = sh("git", "--git-dir", str(self.remote), "rev-parse", "main")
        config = tmp / "config.yaml"
        config.write_text(
            f"orchestrator: {{max_parallel_tasks_per_sprint: 5, allowed_host_paths: ['{tmp}']}}\n"
            f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
            f"containers: {{base_image: {IMAGE}}}\n"
        )
        self.env = {
            **os.environ,
            "KUBECONFIG": str(local.kubeconfig),
            "SPRINT_ORCHESTRATOR_CONFIG": str(config),
            "SPRINT_ORCHESTRATOR_STATE_DIR": str(self.state),
            "TMPDIR": str(self.state / "tmp"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()  # the fault thread and the main thread both restart the operator

    def _remote(self) -> tuple[Path, str, subprocess.Popen[bytes]]:
        seed = self.tmp / "seed"
        seed.mkdir()
        (seed / "README.md").write_text("chaos\n")
        sh("git", "-C", str(seed), "init", "-q", "-b", "main")
        sh("git", "-C", str(seed), "add", "-A")
        sh("git", "-C", str(seed), "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "initial")
        remote = self.tmp / "target.git"
        sh("git", "init", "-q", "--bare", "-b", "main", str(remote))
        sh("git", "--git-dir", str(remote), "config", "core.logAllRefUpdates", "always")
        sh("git", "-C", str(seed), "push", "-q", str(remote), "main")
        hook = remote / "hooks" / "pre-receive"
        counter = self.tmp / "refusals"
        hook.write_text(
            "#!/bin/sh\n"
            f"n=$(cat {counter} 2>/dev/null || echo 0)\n"
            'if [ "$n" -gt 0 ]; then\n'
            f"  echo $((n - 1)) > {counter}\n"
            "  echo 'chaos: the remote refuses this push' >&2\n"
            "  exit 1\n"
            "fi\n"
        )
        hook.chmod(0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        daemon = subprocess.Popen(
            [
                "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", "--export-all",
                "--enable=receive-pack", f"--base-path={self.tmp}", str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # `git daemon` runs git-daemon as a child: stopped as a group
        )  # fmt: skip
        url = f"git://127.0.0.1:{port}/target.git"
        deadline = time.monotonic() + 60
        while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.2)
        return remote, url, daemon

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return sh(str(BIN / "kubectl"), "--kubeconfig", str(self.local.kubeconfig), *args, input=input)

    def start(self) -> None:
        with open(self.oplog, "ab") as out:
            self.proc = subprocess.Popen(
                [SPRINTCTL, "operator", f"--namespace={NAMESPACE}", "--log-format", "json"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_and_restart(self) -> None:
        with self.lock:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
            self.start()

    def pause(self, seconds: float) -> None:
        with self.lock:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                os.kill(self.proc.pid, signal.SIGCONT)

    def restart_apiserver(self, seconds: float) -> None:
        """The kube-apiserver down for `seconds`, then up again on etcd's data (the operator runs on)."""
        self.local.stop_apiserver()
        try:
            time.sleep(seconds)
        finally:
            self.local.start_apiserver()

    def kill_podman_service(self) -> bool:
        """SIGKILL the operator's Podman API service; False when none is running (not started yet)."""
        pids = _procs.podman_services(self.state / "run")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def stop(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=30)
        _procs.stop_podman_service(self.state)

    def close(self) -> None:
        self.stop()
        if self.daemon.poll() is None:
            os.killpg(self.daemon.pid, signal.SIGTERM)
        self.daemon.wait(timeout=30)


def recipe(recipes: Path, task: str, path: str, text: str) -> None:
    (recipes / task / Path(path).parent).mkdir(parents=True, exist_ok=True)
    (recipes / task / path).write_text(text)


def sprint(world: World, i: int) -> dict[str, Any]:
    """A dependency, a conflict and a failing gate (see the module's docstring)."""
    recipes = world.recipes / str(i)
    files = {name: f"files/{name}-{i}.txt" for name in ("base", "dep", "gate")}
    for name, path in files.items():
        recipe(recipes, name, path, f"{name} {i}\n")
    clash = f"files/clash-{i}.txt"
    recipe(recipes, "left", clash, f"left {i}\n")
    recipe(recipes, "right", clash, f"right {i}\n")

    def task(name: str, path: str, **more: Any) -> dict[str, Any]:
        return {"id": name, "title": f"{name} {i}", "filesToModify": [path], **more}

    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": f"chaos-{i}", "namespace": NAMESPACE},
        "spec": {
            "repository": {"url": world.url},
            "team": {"type": "demo", "recipes": str(recipes)},
            "maxParallelTasks": 3,
            "tasks": [
                task("base", files["base"], testRequirements=[f"sleep 2; test -s {files['base']}"]),
                task(
                    "dep", files["dep"], dependencies=["base"], testRequirements=[f"test -s {files['dep']}"]
                ),
                task("left", clash),
                task("right", clash),
                task("gate", files["gate"], testRequirements=["false"]),
            ],
            "integrationTests": [f"test -s {files['base']} && test -s {files['dep']}"],
        },
    }


def run_sprint(world: World, kube: Kube, i: int) -> tuple[str, float]:
    """Apply sprint i, approve its task in Review (as a human), wait until it ends: (phase, seconds)."""
    import yaml

    name = f"chaos-{i}"
    started = time.monotonic()
    text = yaml.safe_dump(sprint(world, i))
    while True:  # the apiserver may be down (an `apiserver` fault): apply again once it is back
        try:
            world.kubectl("apply", "-f", "-", input=text)
            break
        except subprocess.CalledProcessError:
            if time.monotonic() - started > RECOVERY_WAIT_S:
                raise
            time.sleep(1.0)
    approved: set[str] = set()
    while time.monotonic() - started < SPRINT_TIMEOUT_S:
        try:
            body = kube.get(SPRINTS, NAMESPACE, name) or {}
            tasks = kube.tasks_of(NAMESPACE, name)
        except Exception as exc:
            if not unreachable(exc):
                raise
            time.sleep(1.0)  # the apiserver restarting: look again
            continue
        phase = (body.get("status") or {}).get("phase")
        if phase in TERMINAL:
            return str(phase), time.monotonic() - started
        for t in tasks:
            st = t.get("status") or {}
            key = f"{t['spec']['taskId']}/{st.get('attempt')}"
            if st.get("phase") == "Review" and key not in approved:
                env = {**world.env, "KUBECONFIG": str(world.local.kubeconfig)}
                done = subprocess.run(
                    [SPRINTCTL, "approve", name, t["spec"]["taskId"], "-n", NAMESPACE],
                    env=env,
                    capture_output=True,
                )
                if done.returncode == 0:
                    approved.add(key)
        time.sleep(1.0)
    return "TimedOut", time.monotonic() - started


class Faults:
    """The fault thread: one random fault every 0.5-4 s until `limit` are injected."""

    def __init__(
        self, world: World, recorder: Recorder, limit: int, rng: random.Random, kinds: dict[str, int]
    ) -> None:
        self.world, self.recorder, self.limit, self.rng, self.kinds = world, recorder, limit, rng, kinds
        self.injected = {k: 0 for k in KINDS}
        self.kills: list[float] = []  # time.monotonic() of each kill
        self.restarts: list[float] = []  # time.monotonic() of each apiserver start after a stop
        self.sprint = ""  # the sprint under way, whose containers may be removed
        self.thread = threading.Thread(target=self._loop, daemon=True, name="faults")
        self.stopping = threading.Event()

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def done(self) -> bool:
        return self.total >= self.limit

    def _loop(self) -> None:
        while not self.done() and not self.stopping.is_set():
            time.sleep(self.rng.uniform(0.5, 4.0))
            kind = self.rng.choices(list(self.kinds), weights=list(self.kinds.values()))[0]
            try:
                if kind == "container" and not self._remove_container():
                    kind = "kill"  # nothing running to remove: a kill instead
                if kind == "podman" and not self.world.kill_podman_service():
                    kind = "kill"  # no service yet: a kill instead
                if kind == "kill":
                    self.kills.append(time.monotonic())
                    self.world.kill_and_restart()
                    self._recovered(self.kills[-1])
                elif kind == "apiserver":
                    self.world.restart_apiserver(self.rng.uniform(1.0, 5.0))
                    self.restarts.append(time.monotonic())
                    self._recovered(self.restarts[-1])
                elif kind == "pause":
                    self.world.pause(self.rng.uniform(1.0, 5.0))
                elif kind == "refuse":
                    self.world.refusals.write_text(str(self.rng.randint(1, 3)))
            except Exception as exc:  # a fault that could not be injected is not counted
                log(f"fault {kind} not injected: {exc}")
                continue
            self.injected[kind] += 1
            if self.total % 10 == 0:
                log(f"{self.total} faults injected: {self.injected}")

    def _recovered(self, moment: float) -> None:
        """The next fault once the operator made progress after `moment` (or after RECOVERY_WAIT_S):
        kills faster than a start-up would test nothing but the start-up."""
        deadline = time.monotonic() + RECOVERY_WAIT_S
        while self.recorder.progress_after(moment) is None and time.monotonic() < deadline:
            time.sleep(0.2)

    def _remove_container(self) -> bool:
        if not self.sprint:
            return False
        tenant = tenant_of(NAMESPACE, self.sprint)
        out = sh(
            "podman", "ps", "-q", "--filter", f"label=sprintorchestrator.dev/tenant={tenant}",
            "--filter", "label=sprintorchestrator.dev/role=task",
        )  # fmt: skip
        running = out.split()
        if not running:
            return False
        subprocess.run(["podman", "rm", "-f", self.rng.choice(running)], capture_output=True, check=True)
        return True


def run(tmp: Path, local: LocalCluster, limit: int, seed: int, kinds: dict[str, int]) -> dict[str, Any]:
    began = time.monotonic()
    world = World(tmp, local)
    local.apply_crds(REPO / "crds")
    world.kubectl("create", "namespace", NAMESPACE)
    kube = Kube.from_kubeconfig(str(local.kubeconfig))
    recorder = Recorder(kube, NAMESPACE).__enter__()
    faults = Faults(world, recorder, limit, random.Random(seed), kinds)
    phases: list[str] = []
    chaos_times: list[float] = []
    try:
        world.start()
        calm_phase, calm_s = run_sprint(world, kube, 0)
        log(f"calm sprint: {calm_phase} in {calm_s:.1f} s")
        phases.append(calm_phase)
        faults.thread.start()
        i = 0
        while not faults.done():
            i += 1
            faults.sprint = f"chaos-{i}"
            phase, seconds = run_sprint(world, kube, i)
            log(f"sprint chaos-{i}: {phase} in {seconds:.1f} s ({faults.total} faults so far)")
            phases.append(phase)
            chaos_times.append(seconds)
            if phase == "TimedOut":
                break
        faults.stopping.set()
        faults.thread.join(timeout=120)
        world.stop()
        recorder.stop()
        world.refusals.write_text("0")
        found = check(
            collect(kube, NAMESPACE, world.remote, world.state, [world.oplog], world.base_main,
                    trees_dir=tmp / "trees", recorder=recorder)
        )  # fmt: skip
    finally:
        faults.stopping.set()
        recorder.stop()
        world.close()  # the operator, its Podman service, the git daemon
        kube.close()
    for violation in found:
        log(f"VIOLATION {violation}")
    errors = unexpected_errors(world.oplog.read_text(errors="replace"), EXPECTED_ERRORS)
    for line in errors[:20]:
        log(f"UNEXPECTED {line}")
    recoveries = [p - k for k in faults.kills if (p := recorder.progress_after(k)) is not None]
    api_recoveries = [p - r for r in faults.restarts if (p := recorder.progress_after(r)) is not None]
    converged = sum(1 for p in phases if p in ("Completed", "Partial"))
    return {
        "faults_injected": faults.total,
        "faults_by_kind": faults.injected,
        "sprints": len(phases),
        "sprints_converged": converged,
        "sprint_phases": phases,
        "invariant_violations": len(found),
        "unexpected_operator_errors": len(errors),
        "median_recovery_after_kill_s": round(statistics.median(recoveries), 2) if recoveries else None,
        "max_recovery_after_kill_s": round(max(recoveries), 2) if recoveries else None,
        "kills_measured": len(recoveries),
        "median_recovery_after_apiserver_restart_s": (
            round(statistics.median(api_recoveries), 2) if api_recoveries else None
        ),
        "apiserver_restarts_measured": len(api_recoveries),
        "calm_sprint_s": round(calm_s, 1),
        "median_sprint_under_faults_s": round(statistics.median(chaos_times), 1) if chaos_times else None,
        "recorder_notes": len(recorder.errors),
        "total_s": round(time.monotonic() - began, 1),
        "seed": seed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200, help="faults to inject (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the time)")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated fault kinds (default: all of {', '.join(KINDS)})",
    )
    args = parser.parse_args()
    if args.faults < 1:
        parser.error("--faults must be at least 1")
    unknown = [k for k in args.kinds.split(",") if k not in KINDS]
    if unknown or not args.kinds:
        parser.error(f"--kinds: unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    kinds = {k: KINDS[k] for k in args.kinds.split(",")}
    seed = args.seed if args.seed is not None else int(time.time())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operator are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        try:
            figures = run(tmp, local, args.faults, seed, kinds)
        finally:
            local.down()
            unmount_under(tmp)
    print(json.dumps(figures))
    return 0


def unmount_under(root: Path) -> None:
    """Unmount what the run left mounted under `root` (disks of containers left behind: reported as
    violations), deepest first, so the temporary directory can go and the figures still print."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as info:
        targets = [line.split()[4] for line in info if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
