"""The Podman runtime: pure naming/image/exit/log decisions, then real containers (marker `podman`)."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from _e2e import wait_for
from _podman import build_base_image, host_debian_sources, remove_sprint, runtime_for, settings_for, task_spec
from sprint_orchestrator import LABEL_ATTEMPT, LABEL_SPRINT, LABEL_TASK
from sprint_orchestrator.errors import ImageBuildFailed, InvalidInput, RuntimeUnavailable
from sprint_orchestrator.model import TaskDefinition, TeamConfig
from sprint_orchestrator.runtime import (
    Health,
    Limits,
    Mount,
    container_name,
    containers,
    exits,
    images,
    logs,
    podmanconnect,
    task_labels,
)
from sprint_orchestrator.runtime.podman import PodmanRuntime
from sprint_orchestrator.runtime.podmanraces import cgroup_race, start_race
from sprint_orchestrator.teams import TEAMS, collect_results, write_task_files
from sprint_orchestrator.usage import parse

REPO = Path(__file__).resolve().parent.parent

# -- pure parts --------------------------------------------------------------------------------------


def test_container_names_are_deterministic_and_valid() -> None:
    assert container_name("textstats-1", "words", 2) == "so-textstats-1-words-2"
    long = container_name("s" * 60, "T_" * 30, 12)
    assert len(long) <= 63 and long.endswith("-12") and long == long.lower()


def test_task_labels_carry_sprint_task_and_attempt() -> None:
    labels = task_labels("s", "t", 3)
    assert (labels[LABEL_SPRINT], labels[LABEL_TASK], labels[LABEL_ATTEMPT]) == ("s", "t", "3")


def test_the_sprint_image_tag_depends_only_on_its_configuration() -> None:
    tag = images.sprint_image_tag("sha256:a", ["pip:requests==2.32.3", "jq"], {"A": "1"})
    assert tag == images.sprint_image_tag("sha256:a", ["apt:jq", "pip:requests==2.32.3"], {"A": "1"})
    assert tag != images.sprint_image_tag("sha256:b", ["jq", "pip:requests==2.32.3"], {"A": "1"})
    assert tag != images.sprint_image_tag("sha256:a", ["jq"], {"A": "1"})
    assert tag != images.sprint_image_tag("sha256:a", ["jq", "pip:requests==2.32.3"], {"A": "2"})
    assert tag.startswith("localhost/sprint-orchestrator/sprint:")


def test_a_containerfile_cannot_be_injected_through_dependencies_or_environment() -> None:
    with pytest.raises(InvalidInput, match=r"container.dependencies\[0\]"):
        images.split_dependencies(["jq && curl evil"])
    with pytest.raises(InvalidInput, match="control characters"):
        images.render_containerfile("base", [], {"A": "x\nRUN rm -rf /"}, {})
    sources = images.PackageSources(apt=("http://deb.example/debian",), pip=("https://pypi.example/simple",))
    text = images.render_containerfile("base", ["jq", "pip:six"], {"A": 'say "$HOME"'}, {"k": "v"}, sources)
    assert 'ENV A="say \\"\\$HOME\\""' in text
    assert "apt-get install -y --no-install-recommends jq python3-pip" in text
    assert (
        "pip install --no-cache-dir --break-system-packages --index-url https://pypi.example/simple six"
        in text
    )


def test_a_sprint_image_build_gets_a_network_only_for_configured_package_sources() -> None:
    none = images.PackageSources()
    assert images.build_network([], none) == "none"
    assert images.build_network(["jq"], none) == "none"  # and refused: see missing_sources
    [problem] = images.missing_sources(["jq"], none)
    assert "containers.package_sources.apt" in problem and "jq" in problem
    assert images.missing_sources(["pip:six"], images.PackageSources(apt=("http://d/debian",)))
    debian = images.PackageSources(apt=("http://d/debian",))
    assert images.build_network(["jq"], debian) == "host"
    with pytest.raises(InvalidInput, match=r"container\.dependencies"):
        images.render_containerfile("base", ["jq"], {}, {})
    text = images.render_containerfile("base", ["jq"], {}, {}, debian)
    assert "rm -f /etc/apt/sources.list.d/*" in text and "for url in http://d/debian;" in text
    assert images.sprint_image_tag("sha256:a", ["jq"], {}, debian) != images.sprint_image_tag(
        "sha256:a", ["jq"], {}, images.PackageSources(apt=("http://other/debian",))
    )
    with pytest.raises(InvalidInput, match=r"containers.package_sources.apt\[0\]"):
        images.PackageSources(apt=("http://d/debian; curl evil",))


@pytest.mark.parametrize(
    ("facts", "health"),
    [
        (exits.ExitFacts(0, False, False, True, False), Health.EXITED),
        (exits.ExitFacts(3, False, False, True, False), Health.EXITED),
        (exits.ExitFacts(137, False, True, True, None), Health.TIMED_OUT),
        (exits.ExitFacts(137, False, False, True, True), Health.OOM_KILLED),
        (exits.ExitFacts(137, False, False, True, False), Health.EXITED),  # a kill -9 that was not OOM
        (exits.ExitFacts(137, False, False, True, None), Health.OOM_KILLED),  # inferred
        (exits.ExitFacts(137, False, False, False, None), Health.EXITED),  # no memory limit: no OOM
        (exits.ExitFacts(1, True, False, True, False), Health.OOM_KILLED),  # the runtime said so
    ],
)
def test_exits_are_classified(facts: exits.ExitFacts, health: Health) -> None:
    assert exits.classify(facts)[0] == health


def test_kernel_log_lines_name_the_container_that_was_oom_killed(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("6,1,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/libpod_parent/libpod-abc123,x\n")
    assert exits.kernel_reports_oom("abc123", str(kmsg)) is True
    assert exits.kernel_reports_oom("def456", str(kmsg)) is False
    assert exits.kernel_reports_oom("abc123", str(tmp_path / "missing")) is None


def test_k8s_file_logs_are_decoded_with_partial_lines_joined() -> None:
    raw = [
        "2026-01-01T00:00:00.1+00:00 stdout P par\n",
        "2026-01-01T00:00:00.2+00:00 stderr F oops\n",
        "2026-01-01T00:00:00.3+00:00 stdout F tial\n",
        "cut-off garbage\n",
        "2026-01-01T00:00:00.4+00:00 stdout F \n",
    ]
    assert logs.decode(raw) == "oops\npartial\n\n"
    assert logs.decode(raw, ("stdout",)) == "partial\n\n"
    assert logs.tail("a\n" * 10, 5).startswith("a")


def test_task_containers_are_created_hardened(tmp_path: Path) -> None:
    spec = task_spec(
        tmp_path, "s", "t", ["true"], environment={"A": "1"}, secrets={"KEY": "secret-value"},
        extra_mounts=[Mount(tmp_path, "/opt/ro")], limits=Limits(cpus=0.5, memory_bytes=128 << 20, pids=64),
    )  # fmt: skip
    kwargs = containers.task_kwargs(spec, "so-s-t-1", "1000:1000", tmp_path / "log", tmp_path / "sec")
    assert kwargs["network_mode"] == "none" and kwargs["cap_drop"] == ["ALL"] and kwargs["init"] is True
    assert kwargs["no_new_privileges"] and kwargs["read_only"] and kwargs["read_write_tmpfs"]
    assert (kwargs["mem_limit"], kwargs["memswap_limit"], kwargs["pids_limit"]) == (128 << 20,) * 2 + (64,)
    assert (kwargs["cpu_period"], kwargs["cpu_quota"]) == (100_000, 50_000)
    assert kwargs["environment"] == {"A": "1", "HOME": "/tmp"}
    assert "secret-value" not in repr(kwargs)
    mounts = {(m["target"], m["read_only"]) for m in kwargs["mounts"] if m["type"] == "bind"}
    assert mounts == {("/workspace", False), ("/artifacts", False), ("/opt/ro", True), ("/run/secrets", True)}
    assert [m["target"] for m in kwargs["mounts"] if m["type"] == "tmpfs"] == ["/tmp"]
    assert kwargs["labels"] == task_labels("s", "t", 1)


def test_podman_times_are_parsed_to_aware_datetimes() -> None:
    parsed = containers.parse_time("2026-11-25T15:45:24.606649741Z")
    assert parsed is not None and parsed.isoformat() == "2026-11-25T15:45:24.606649+00:00"
    assert containers.parse_time("0001-01-01T00:00:00Z") is None


# -- real Podman -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanRuntime]:
    build_base_image()
    yield from runtime_for(tmp_path_factory.mktemp("podman-state"))


@pytest.fixture
def sprint(runtime: PodmanRuntime) -> Iterator[str]:
    sprint_id = f"t{uuid.uuid4().hex[:10]}"
    yield sprint_id
    remove_sprint(runtime, sprint_id)


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


@pytest.mark.podman
def test_a_task_edits_files_and_writes_results(runtime: PodmanRuntime, sprint: str, tmp_path: Path) -> None:
    spec = task_spec(tmp_path, sprint, "edit", sh("echo new > /workspace/new.txt; echo done > RESULTS.md"))
    (spec.workspace / "old.txt").write_text("old\n")
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert (outcome.health, outcome.exit_code) == (Health.EXITED, 0)
    assert (spec.workspace / "new.txt").read_text() == "new\n"
    assert collect_results(spec.workspace, spec.artifacts).summary == "done\n"


@pytest.mark.podman
def test_workspace_files_belong_to_the_operator_after_the_run(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = task_spec(tmp_path, sprint, "own", sh("id -u > uid.txt; mkdir -p d/e; echo x > d/e/f"))
    runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert (spec.workspace / "uid.txt").read_text().strip() == (
        "1000" if os.geteuid() == 0 else str(os.getuid())
    )
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in [spec.workspace, *spec.workspace.rglob("*")]}
    assert owners == {(os.getuid(), os.getgid())}


@pytest.mark.podman
def test_a_task_past_its_timeout_is_stopped(runtime: PodmanRuntime, sprint: str, tmp_path: Path) -> None:
    spec = task_spec(tmp_path, sprint, "slow", ["sleep", "60"], timeout_s=2)
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert outcome.health == Health.TIMED_OUT
    assert outcome.started_at and outcome.finished_at
    assert 2 <= (outcome.finished_at - outcome.started_at).total_seconds() < 30


@pytest.mark.podman
def test_a_task_past_its_memory_limit_is_detected_as_oom_killed(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    hog = "a = []\nwhile True: a.append(bytearray(1 << 20))"
    spec = task_spec(tmp_path, sprint, "hog", ["python3", "-c", hog], limits=Limits(memory_bytes=64 << 20))
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert (outcome.health, outcome.exit_code) == (Health.OOM_KILLED, 137)


@pytest.mark.podman
def test_a_task_killed_by_itself_is_not_called_oom(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = task_spec(tmp_path, sprint, "kill9", sh("kill -9 $$"))
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert (outcome.health, outcome.exit_code) == (Health.EXITED, 137)


@pytest.mark.podman
def test_a_task_has_no_network(runtime: PodmanRuntime, sprint: str, tmp_path: Path) -> None:
    probe = (
        "import os, socket\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=3)\n    print('CONNECTED')\n"
        "except OSError as exc:\n    print('blocked', exc.errno)\n"
    )
    spec = task_spec(tmp_path, sprint, "net", ["python3", "-c", probe])
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    out = outcome.log_path.read_text()
    assert outcome.exit_code == 0
    assert "['lo']" in out and "blocked" in out and "CONNECTED" not in out


@pytest.mark.podman
def test_a_task_cannot_reach_host_files_outside_its_mounts(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "host-secret.txt"
    secret.parent.mkdir()
    secret.write_text("host only")
    script = (
        f"cat {secret} || echo no-host-file; touch /etc/x 2>/dev/null || echo rootfs-read-only; "
        "grep CapEff /proc/self/status; cat /opt/ro/f; echo y > /opt/ro/f 2>/dev/null || echo mount-read-only"
    )
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "f").write_text("readable\n")
    spec = task_spec(tmp_path, sprint, "escape", sh(script), extra_mounts=[Mount(ro, "/opt/ro")])
    out = runtime.wait(runtime.start_task(spec), spec.timeout_s).log_path.read_text()
    assert "host only" not in out and "no-host-file" in out
    assert "rootfs-read-only" in out and "mount-read-only" in out and "readable" in out
    assert "CapEff:\t0000000000000000" in out
    assert (ro / "f").read_text() == "readable\n"


@pytest.mark.podman
def test_secrets_reach_the_process_but_not_the_container_config(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"s3cr3t-42").hexdigest()  # the command must not hold the secret either
    check = f'printf %s "$API_KEY" | sha256sum | grep -q {digest}'
    command = ["sh", "/opt/sprint-team/with-secrets.sh", "sh", "-c", check]
    team_files = Mount(REPO / "operator/sprint_orchestrator/teams/files", "/opt/sprint-team")
    spec = task_spec(
        tmp_path, sprint, "sec", command, secrets={"API_KEY": "s3cr3t-42"}, extra_mounts=[team_files]
    )
    handle = runtime.start_task(spec)
    inspected = json.dumps(runtime.client.containers.get(handle.name).inspect())
    assert runtime.wait(handle, spec.timeout_s).exit_code == 0
    assert "s3cr3t-42" not in inspected


@pytest.mark.podman
def test_a_restarted_operator_adopts_the_running_container(sprint: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = PodmanRuntime.connect(settings_for(state))
    # Runs until the test lets it finish (creates `go`), however long the service restart takes.
    spec = task_spec(
        tmp_path, sprint, "long", sh("until [ -e go ]; do sleep 0.1; done; echo finished > out.txt")
    )
    started = first.start_task(spec)
    first.close()  # the operator goes away, and its API service with it
    second = PodmanRuntime.connect(settings_for(state))
    try:
        found = second.find_task_containers(sprint)
        assert [(i.task_id, i.attempt, i.health) for i in found] == [("long", 1, Health.RUNNING)]
        again = second.start_task(spec)
        assert again.adopted and again.container_id == started.container_id
        (spec.workspace / "go").touch()
        outcome = second.wait(again, spec.timeout_s)
        assert outcome.exit_code == 0 and (spec.workspace / "out.txt").read_text() == "finished\n"
        assert len(second.find_task_containers(sprint)) == 1
    finally:
        remove_sprint(second, sprint)
        second.close()


@pytest.mark.podman
def test_a_stopped_task_ends_as_exited_not_timed_out(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = task_spec(tmp_path, sprint, "stopme", ["sleep", "60"])
    handle = runtime.start_task(spec)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(runtime.wait, handle, spec.timeout_s)
        runtime.stop(handle, grace_s=1)
        outcome = waiting.result(timeout=60)
    assert outcome.health == Health.EXITED and outcome.exit_code in (137, 143)


@pytest.mark.podman
def test_a_task_removed_while_waited_on_is_reported_removed(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = task_spec(tmp_path, sprint, "rmme", sh("echo x > f.txt; sleep 60"))
    handle = runtime.start_task(spec)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(runtime.wait, handle, spec.timeout_s)
        wait_for(lambda: (spec.workspace / "f.txt").exists(), timeout=300, what="the container to write")
        runtime.remove(handle)
        outcome = waiting.result(timeout=60)
    assert outcome.health == Health.REMOVED
    assert (spec.workspace / "f.txt").stat().st_uid == os.getuid()


@pytest.mark.podman
def test_parallel_tasks_run_side_by_side(runtime: PodmanRuntime, sprint: str, tmp_path: Path) -> None:
    specs = [
        task_spec(tmp_path / str(i), sprint, f"p{i}", sh(f"sleep 1; echo {i} > n.txt")) for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(runtime.start_task, specs))
        outcomes = list(pool.map(lambda h: runtime.wait(h, 60), handles))
    assert [o.exit_code for o in outcomes] == [0, 0, 0, 0]
    assert [(s.workspace / "n.txt").read_text() for s in specs] == ["0\n", "1\n", "2\n", "3\n"]
    assert len({h.container_id for h in handles}) == 4


@pytest.mark.podman
def test_a_new_attempt_gets_its_own_container(runtime: PodmanRuntime, sprint: str, tmp_path: Path) -> None:
    spec = task_spec(tmp_path, sprint, "again", ["true"])
    runtime.wait(runtime.start_task(spec), 30)
    second = runtime.start_task(replace(spec, attempt=2))
    runtime.wait(second, 30)
    assert [i.attempt for i in runtime.find_task_containers(sprint)] == [1, 2]
    runtime.remove(second)
    assert runtime.status(second.name) is None


@pytest.mark.podman
def test_a_oneshot_gate_reports_exit_code_and_log_tail(runtime: PodmanRuntime, tmp_path: Path) -> None:
    (tmp_path / "check.sh").write_text("echo checking; test -f present.txt\n")
    failed = runtime.run_oneshot(runtime.base_image, ["sh", "check.sh"], tmp_path, 60, Limits())
    assert failed.exit_code == 1 and "checking" in failed.log_tail
    (tmp_path / "present.txt").write_text("")
    assert runtime.run_oneshot(runtime.base_image, ["sh", "check.sh"], tmp_path, 60, Limits()).exit_code == 0
    assert (tmp_path / "check.sh").stat().st_uid == os.getuid()


@pytest.mark.podman
def test_the_sprint_image_is_built_once_per_configuration(runtime: PodmanRuntime, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    first = runtime.ensure_sprint_image(runtime.base_image, [], {"SPRINT_MARK": marker}, {"purpose": "test"})
    try:
        again = runtime.ensure_sprint_image(runtime.base_image, [], {"SPRINT_MARK": marker}, {})
        assert (first.built, again.built, again.tag) == (True, False, first.tag)
        result = runtime.run_oneshot(first.tag, ["sh", "-c", "echo $SPRINT_MARK"], tmp_path, 60, Limits())
        assert marker in result.log_tail
    finally:
        runtime.client.images.remove(first.tag, force=True)


@pytest.mark.podman
def test_sprint_image_dependencies_without_a_configured_source_are_refused_before_any_build(
    runtime: PodmanRuntime,
) -> None:
    before = {image.id for image in runtime.client.images.list()}
    with pytest.raises(ImageBuildFailed, match=r"containers.package_sources.apt"):
        runtime.ensure_sprint_image(runtime.base_image, ["apt:jq"], {}, {})
    assert {image.id for image in runtime.client.images.list()} == before


@pytest.mark.podman
def test_a_sprint_image_installs_packages_from_the_configured_source_only(
    runtime: PodmanRuntime, tmp_path: Path
) -> None:
    sources = host_debian_sources()
    if not sources:
        pytest.skip("this machine's apt names no Debian archive")
    runtime.package_sources = images.PackageSources(apt=sources)
    try:
        with pytest.raises(ImageBuildFailed) as failure:
            runtime.ensure_sprint_image(
                runtime.base_image, ["apt:no-such-package-sprint-orchestrator"], {}, {}
            )
        assert "no-such-package-sprint-orchestrator" in failure.value.log_tail
        built = runtime.ensure_sprint_image(runtime.base_image, ["apt:jq"], {}, {})
        try:
            result = runtime.run_oneshot(
                built.tag, ["sh", "-c", "jq -n 1+1; cat /etc/apt/sources.list"], tmp_path, 60, Limits()
            )
            assert result.exit_code == 0 and "2" in result.log_tail.split()
            assert [
                line.split()[1] for line in result.log_tail.splitlines() if line.startswith("deb ")
            ] == list(sources)
        finally:
            runtime.client.images.remove(built.tag, force=True)
    finally:
        runtime.package_sources = images.PackageSources()


@pytest.mark.podman
def test_a_missing_base_image_is_a_clear_build_failure(runtime: PodmanRuntime) -> None:
    with pytest.raises(ImageBuildFailed, match=r"container.baseImage: .*hack/base-image.sh"):
        runtime.ensure_sprint_image("localhost/sprint-orchestrator/none:missing", [], {}, {})


@pytest.mark.podman
def test_a_misconfigured_podman_is_refused_with_a_fix(tmp_path: Path) -> None:
    build_base_image()
    bare = tmp_path / "bare.conf"
    bare.write_text('[engine]\nruntime = "runc"\n')  # no default_ulimits: runc cannot set RLIMIT_NOFILE
    env = {"PATH": os.environ["PATH"], "CONTAINERS_CONF": str(bare)}
    with pytest.raises(RuntimeUnavailable, match="CONTAINERS_CONF"):
        PodmanRuntime.connect(settings_for(tmp_path / "state", env))


# -- the demo team in a real container -----------------------------------------------------------------


def demo_run(runtime: PodmanRuntime, sprint: str, tmp_path: Path, task: TaskDefinition) -> Path:
    spec = task_spec(tmp_path, sprint, task.id, ["true"])
    shutil.copytree(REPO / "examples/textstats", spec.workspace, dirs_exist_ok=True)
    write_task_files(spec.workspace, task, {})
    launch = TEAMS["demo"](
        task, TeamConfig(type="demo", recipes=str(REPO / "examples/demo-team/textstats-1"))
    )
    spec = replace(spec, command=launch.command, environment=launch.environment, extra_mounts=launch.mounts)
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    assert outcome.exit_code == 0, outcome.log_path.read_text()
    return spec.workspace


@pytest.mark.podman
def test_the_demo_team_implements_a_task_and_reports_usage(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    words = TaskDefinition(
        id="words", title="Count words", test_requirements=["python3 -m pytest -q tests/test_words.py"]
    )
    workspace = demo_run(runtime, sprint, tmp_path / "one", words)
    assert (workspace / "textstats/words.py").read_text().count("def count_words") == 1
    results = collect_results(workspace, tmp_path / "one/artifacts")
    assert results.present and "passed" in results.summary and "FAILED" not in results.summary
    assert results.usage_format == "usage-jsonl" and results.usage_text
    usage = parse(results.usage_text, "usage-jsonl")
    assert usage.total_tokens and not usage.partial
    again = demo_run(runtime, sprint + "b", tmp_path / "two", words)
    remove_sprint(runtime, sprint + "b")
    assert collect_results(again, tmp_path / "two/artifacts").usage_text == results.usage_text


@pytest.mark.podman
def test_the_demo_team_writes_a_note_for_a_task_without_a_recipe(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    workspace = demo_run(runtime, sprint, tmp_path, TaskDefinition(id="unknown", title="Nothing"))
    results = collect_results(workspace, tmp_path / "artifacts")
    assert "notes/unknown.md" in results.summary
    assert (workspace / "notes/unknown.md").read_text() == "# unknown\n\nNothing\n"
    assert sorted(p.name for p in workspace.iterdir()) == sorted(
        [*os.listdir(REPO / "examples/textstats"), "TASK.md", ".sprint", "RESULTS.md", "notes"]
    )


@pytest.mark.podman
def test_finished_gate_containers_left_behind_are_pruned(runtime: PodmanRuntime) -> None:
    name = f"so-oneshot-leftover-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "podman",
            "create",
            "--name",
            name,
            "--label",
            "sprintorchestrator.dev/role=oneshot",
            runtime.base_image,
            "true",
        ],
        check=True,
        capture_output=True,
    )
    try:
        assert name in runtime.prune_oneshots()
        assert runtime.status(name) is None
        exists = subprocess.run(["podman", "container", "exists", name], check=False)
        assert exists.returncode == 1
    finally:
        subprocess.run(["podman", "rm", "-f", name], check=False, capture_output=True)


@pytest.mark.podman
def test_pruning_spares_the_gates_of_this_operator_process_and_of_other_operators(
    runtime: PodmanRuntime,
) -> None:
    """A restarted operator prunes at start-up while its resumed tasks already start gates: it must
    remove only what an earlier process of the same operator left, a gate still running included (a
    killed operator's: nobody waits for its verdict, and left running it outlived every later prune)."""
    owners = {
        "earlier": (runtime.owner, "an-earlier-process"),
        "running": (runtime.owner, "another-earlier-process"),
        "ours": (runtime.owner, runtime.instance),
        "theirs": ("another-operator", "its-process"),
    }
    names = {key: f"so-oneshot-{key}-{uuid.uuid4().hex[:8]}" for key in owners}
    for key, (owner, instance) in owners.items():
        labels = [
            "sprintorchestrator.dev/role=oneshot",
            f"sprintorchestrator.dev/owner={owner}",
            f"sprintorchestrator.dev/instance={instance}",
        ]
        flags = [arg for label in labels for arg in ("--label", label)]
        command = ["sleep", "600"] if key == "running" else ["true"]
        verb = ["run", "-d"] if key == "running" else ["create"]
        subprocess.run(
            ["podman", *verb, "--name", names[key], *flags, runtime.base_image, *command],
            check=True,
            capture_output=True,
        )
    try:
        pruned = runtime.prune_oneshots()
        assert names["earlier"] in pruned and names["running"] in pruned
        gone = subprocess.run(["podman", "container", "exists", names["running"]], check=False)
        assert gone.returncode == 1
        assert names["ours"] not in pruned and names["theirs"] not in pruned
        assert subprocess.run(["podman", "container", "exists", names["ours"]], check=False).returncode == 0
    finally:
        # --ignore: Podman 4.3 removes none of the names when one of them (the pruned one) is gone
        subprocess.run(["podman", "rm", "-f", "--ignore", *names.values()], check=False, capture_output=True)


def test_a_listed_container_s_state_is_read_from_a_listing_or_an_inspect() -> None:
    from types import SimpleNamespace

    from sprint_orchestrator.runtime.podman import _state

    assert _state(SimpleNamespace(attrs={"State": "exited"})) == "exited"  # a listing
    assert _state(SimpleNamespace(attrs={"State": {"Status": "running"}})) == "running"  # an inspect
    assert _state(SimpleNamespace(attrs={})) == ""


def test_only_podmans_start_race_with_a_command_that_exited_at_once_is_run_again() -> None:
    """The message a CI run got from Podman for a container whose `true` had already exited; any other
    failure to run, or a command's own failure, is a verdict, not retried."""
    race = (
        "container failed to run: 500 Server Error: Internal Server Error "
        "(read /proc/18316/cgroup: no such process)"
    )
    assert start_race(race)
    assert not start_race("container failed to run: 500 Server Error: Internal Server Error (no image)")
    assert not start_race("read /proc/1/cgroup: no such process")  # a command's own output


def test_a_task_containers_state_read_that_met_the_cgroup_race_is_read_again_not_a_crash() -> None:
    """The message a CI run's operator logged as an unexpected error for a task whose command exited at
    once (`podman.errors.APIError` from reading its state): the same race, so the read is tried again
    and a start it failed counts as a start (the command ran; `wait` reads how it ended)."""
    seen = "500 Server Error: Internal Server Error (read /proc/25476/cgroup: no such process)"
    assert cgroup_race(seen)
    assert not cgroup_race("500 Server Error: Internal Server Error (no such container)")


# podman-py leaves the socket of a request to a dead service unclosed (its UDS adapter): collected here.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <podman.api.uds.UDSSocket:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.podman
def test_a_service_of_ours_that_dies_between_its_start_and_the_check_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/chaos.py killed the operator's Podman service just as a restarted operator connected: the
    start-up said "Podman is not usable" although the next call would have started it again."""
    checks: list[int] = []
    real_check = PodmanRuntime.check

    def killed_before_the_first_check(self: PodmanRuntime) -> list[str]:
        if not checks and self.service.process is not None:
            self.service.process.kill()
            self.service.process.wait(timeout=30)
        checks.append(1)
        return real_check(self)

    monkeypatch.setattr(PodmanRuntime, "check", killed_before_the_first_check)
    runtime = PodmanRuntime.connect(settings_for(tmp_path / "state"))
    try:
        assert len(checks) == 2  # the first found it dead; the second, started again, found it well
        assert podmanconnect.answers(runtime.service.url)
    finally:
        runtime.close()
        gc.collect()  # the sockets podman-py left, while the filter above applies
