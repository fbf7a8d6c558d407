"""Resource limits in the notations users write (Kubernetes and Podman/Docker), end to end: the pure
parser, `sprintctl validate` and `sprintctl import`, the real kube-apiserver's CRD schema, and the
cgroup limits of real Podman containers."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from _e2e import SPRINTCTL
from _podman import build_base_image, remove_sprint, runtime_for, task_spec
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator import cli, quantities, retry
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.manifest import validate_sprint_manifest
from sprint_orchestrator.model import ResourceLimits, validate_sprint_spec
from sprint_orchestrator.prd import validate_prd
from sprint_orchestrator.runtime.podman import PodmanRuntime

MiB, GiB = 1 << 20, 1 << 30
# (what users write, bytes it means): Kubernetes quantities, then Podman/Docker sizes
MEMORY = [
    ("512Mi", 512 * MiB),
    ("2Gi", 2 * GiB),
    ("1.5Gi", 1536 * MiB),
    ("524288Ki", 512 * MiB),
    (536870912, 512 * MiB),
    ("536870912", 512 * MiB),
    ("512m", 512 * MiB),
    ("1g", GiB),
    ("2g", 2 * GiB),
    ("0.75g", 768 * MiB),
    ("512mb", 512 * MiB),
    ("512MB", 512 * MiB),
    ("1GB", GiB),
    ("512MiB", 512 * MiB),
    ("524288kb", 512 * MiB),
    ("524288K", 512 * MiB),
]
# (what users write, nano-CPUs): Podman/Docker numbers, their strings, Kubernetes millicores
CPUS = [(1.5, 1_500_000_000), ("1.5", 1_500_000_000), (2, 2 * 10**9), ("500m", 500_000_000),
        ("250m", 250_000_000), (0.5, 500_000_000), ("1", 10**9)]  # fmt: skip


def ids(values: list[tuple[Any, int]]) -> list[str]:
    return [repr(v) for v, _ in values]


# -- the pure rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "expected"), MEMORY, ids=ids(MEMORY))
def test_memory_in_either_notation_means_what_it_means_there(written: Any, expected: int) -> None:
    assert quantities.memory_bytes(written) == expected


@pytest.mark.parametrize(("written", "expected"), CPUS, ids=ids(CPUS))
def test_cpus_as_a_number_a_string_or_millicores(written: Any, expected: int) -> None:
    assert quantities.nano_cpus(written) == expected


@pytest.mark.parametrize(
    ("written", "kubernetes", "podman", "bytes_"),
    [
        ("1G", "1Gi", "1g", "1000000000"),
        ("512M", "512Mi", "512m", "512000000"),
        ("64k", "64Ki", "64kb", "64000"),
        ("2T", "2Ti", "2t", "2000000000000"),
    ],
)
def test_a_suffix_the_two_notations_read_differently_is_refused_with_both_spellings(
    written: str, kubernetes: str, podman: str, bytes_: str
) -> None:
    with pytest.raises(PydanticCustomError) as info:
        quantities.memory_bytes(written)
    message = str(info.value)
    assert "is ambiguous" in message
    assert f"write {kubernetes} (Kubernetes) or {podman} (Podman/Docker)" in message
    assert f"or {bytes_} for exactly that many" in message


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("lots", "write a Kubernetes quantity (512Mi, 2Gi) or a Podman/Docker size (512m, 2g)"),
        ("512", "is 512 bytes, less than 4Mi, too little for a container; write 512Mi or 512m"),
        (512, "is 512 bytes, less than 4Mi"),
        ("1m", "is 1048576 bytes, less than 4Mi"),
        ("512 Mi", "is not a memory size"),
        ("-1Gi", "is not a memory size"),
        (1.5, "is not a memory size"),
        (True, "is not a memory size"),
        ("2048Pi", "is more than 1Pi"),
    ],
)
def test_a_memory_value_that_is_not_a_size_says_what_to_write(written: Any, fragment: str) -> None:
    with pytest.raises(PydanticCustomError) as info:
        quantities.memory_bytes(written)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        (0, "less than 0.01 CPU (10m)"),
        ("5m", "less than 0.01 CPU (10m)"),
        (257, "more than 256 CPUs"),
        ("1.5 cpus", "write a number of CPUs (1.5, as Podman/Docker) or Kubernetes millicores ('500m')"),
        ("1Gi", "is not a CPU count"),
        (True, "is not a CPU count"),
        (float("nan"), "is not a CPU count"),
    ],
)
def test_a_cpu_value_that_is_not_a_count_says_what_to_write(written: Any, fragment: str) -> None:
    with pytest.raises(PydanticCustomError) as info:
        quantities.nano_cpus(written)
    assert fragment in str(info.value)


def test_the_spec_keeps_the_users_notation_and_carries_the_normalized_values() -> None:
    limits = ResourceLimits.model_validate({"memory": "512m", "cpus": "500m"})
    assert limits.dump() == {"memory": "512m", "cpus": "500m"}
    assert (limits.memory_bytes, limits.nano_cpus) == (512 * MiB, 500_000_000)
    assert ResourceLimits.model_validate(limits.dump()) == limits


def test_the_canonical_spellings_shown_in_the_status() -> None:
    assert [quantities.format_bytes(b) for b in (512 * MiB, 1536 * MiB, 2 * GiB, 10**9)] == [
        "512Mi", "1536Mi", "2Gi", "1000000000"]  # fmt: skip
    assert [quantities.format_cpus(n) for n in (1_500_000_000, 2 * 10**9, 250_000_000, 10**9 // 3)] == [
        "1.5", "2", "250m", "0.333333333"]  # fmt: skip


def test_an_empty_resource_limits_means_the_defaults() -> None:
    spec = validate_prd({"sprint_id": "s", "container_config": {"resource_limits": {}},
                         "tasks": [{"task_id": "a", "title": "A"}]})  # fmt: skip
    assert spec.container is not None and spec.container.resource_limits == ResourceLimits()
    limits, timeout = retry.effective_limits(spec.container.resource_limits, {}, 900)
    assert (limits.memory_bytes, limits.cpus, limits.pids, timeout) == (None, None, retry.DEFAULT_PIDS, 900)


def test_a_raised_limit_wins_over_the_spec_but_never_lowers_it() -> None:
    configured = ResourceLimits.model_validate({"memory": "64m", "cpus": "500m", "timeoutSeconds": 30})
    limits, timeout = retry.effective_limits(
        configured, {"memoryBytes": 128 * MiB, "timeoutSeconds": 60}, 900
    )
    assert (limits.memory_bytes, limits.cpus, timeout) == (128 * MiB, 0.5, 60)
    limits, timeout = retry.effective_limits(configured, {"memoryBytes": 32 * MiB, "timeoutSeconds": 10}, 900)
    assert (limits.memory_bytes, timeout) == (64 * MiB, 30)
    assert retry.limits_status(limits, timeout) == {
        "cpus": 0.5, "nanoCpus": 500_000_000, "memory": "64Mi", "memoryBytes": 64 * MiB, "pids": 512,
        "timeoutSeconds": 30}  # fmt: skip


@given(st.text(alphabet="0123456789.kKmMgGtTpPeEiIbB -", max_size=8))
def test_the_crd_pattern_and_rules_agree_with_the_python_check(text: str) -> None:
    """The CRD accepts a string when its pattern matches, it is not ambiguous, and its size is in
    range (the CEL rule's arithmetic, redone here): exactly the strings Python accepts."""
    try:
        quantities.memory_bytes(text)
        python = True
    except PydanticCustomError:
        python = False
    shape = re.fullmatch(quantities.MEMORY_PATTERN, text) is not None
    crd = shape and not re.fullmatch(quantities.AMBIGUOUS_PATTERN, text)
    if crd:
        number = float(re.match(r"^[0-9.]+", text).group())  # type: ignore[union-attr]
        letters = re.findall(r"[A-Za-z]", text)
        size = number * 1024.0 ** quantities._POWER[letters[0].lower() if letters else ""]
        crd = quantities.MEMORY_MIN <= size <= quantities.MEMORY_MAX
    assert python == crd


@given(st.text(alphabet="0123456789.m -", max_size=7))
def test_the_crd_cpu_pattern_accepts_every_string_python_accepts(text: str) -> None:
    try:
        quantities.nano_cpus(text)
        python = True
    except PydanticCustomError:
        python = False
    if python:
        assert re.fullmatch(quantities.CPUS_PATTERN, text)
    if not re.fullmatch(quantities.CPUS_PATTERN, text):
        assert not python


# -- sprintctl validate / import --------------------------------------------------------------------


def prd(limits: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "sprint_id": "limits-1",
        "sprint_name": "Limits",
        "container_config": {"resource_limits": limits},
        "tasks": [{"task_id": "a", "title": "A"}, {"task_id": "b", "title": "B", "dependencies": ["a"]}],
        **fields,
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


NOTATIONS = [(m, c) for (m, _), (c, _) in zip(MEMORY, CPUS * 3, strict=False)]


@pytest.mark.parametrize(("memory", "cpus"), NOTATIONS, ids=[f"{m!r}-{c!r}" for m, c in NOTATIONS])
def test_every_notation_passes_validate_and_import_with_its_meaning_kept(
    memory: Any, cpus: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sprint.json"
    path.write_text(json.dumps(prd({"memory": memory, "cpus": cpus})))
    assert run_cli(capsys, "validate", str(path)) == (0, f"{path}: valid (2 tasks)\n", [])
    code, out, err = run_cli(capsys, "import", str(path))
    assert (code, err) == (0, [])
    manifest = yaml.safe_load(out)
    assert manifest["spec"]["container"]["resourceLimits"] == {"memory": memory, "cpus": cpus}
    limits = validate_sprint_manifest(manifest)[1].container.resource_limits  # type: ignore[union-attr]
    assert limits is not None
    assert (limits.memory_bytes, limits.nano_cpus) == (dict(MEMORY)[memory], dict(CPUS)[cpus])
    (tmp_path / "sprint.yaml").write_text(out)
    assert run_cli(capsys, "validate", str(tmp_path / "sprint.yaml"))[0] == 0


def test_an_ambiguous_value_names_the_field_and_both_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sprint.json"
    path.write_text(json.dumps(prd({"memory": "4G", "cpus": "lots"})))
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 1
    assert err == [
        f"{path}: container_config.resource_limits.cpus: 'lots' is not a CPU count: write a number of "
        "CPUs (1.5, as Podman/Docker) or Kubernetes millicores ('500m')",
        f"{path}: container_config.resource_limits.memory: '4G' is ambiguous: Kubernetes reads it as "
        "4000000000 bytes, Podman/Docker as 4294967296; write 4Gi (Kubernetes) or 4g (Podman/Docker) "
        "for 4294967296 bytes, or 4000000000 for exactly that many",
    ]


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_validate_reports_a_bad_memory_value_a_cycle_and_a_duplicate_id_in_one_round(
    suffix: str, tmp_path: Path
) -> None:
    data = prd({"memory": "lots"})
    data["tasks"][0]["dependencies"] = ["b"]  # a <-> b
    data["tasks"].append({"task_id": "a", "title": "A again"})
    path = tmp_path / f"sprint.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(data))
        names = ("container_config.resource_limits.memory", "tasks[2].task_id", "tasks")
    else:
        spec = validate_prd(prd({})).dump()  # a valid spec, then the same three problems
        spec["container"]["resourceLimits"] = {"memory": "lots"}
        spec["tasks"][0]["dependencies"] = ["b"]
        spec["tasks"].append({"id": "a", "title": "A again"})
        manifest = {"apiVersion": "sprintorchestrator.dev/v1alpha1", "kind": "Sprint",
                    "metadata": {"name": "limits-1"}, "spec": spec}  # fmt: skip
        path.write_text(yaml.safe_dump(manifest))
        names = ("spec.container.resourceLimits.memory", "spec.tasks[2].id", "spec.tasks")
    result = subprocess.run([SPRINTCTL, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}: {names[0]}: 'lots' is not a memory size: write a Kubernetes quantity (512Mi, 2Gi) or a "
        "Podman/Docker size (512m, 2g)",
        f"{path}: {names[1]}: duplicate task id 'a' (also tasks[0])",
        f"{path}: {names[2]}: dependency cycle a -> b -> a",
    ]


def test_the_sprint_spec_reports_field_and_graph_problems_together() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_sprint_spec({"tasks": [{"id": "a", "title": "A", "dependencies": ["a", "zz"]}],
                              "container": {"resourceLimits": {"cpus": "fast"}}})  # fmt: skip
    assert [p.split(":")[0] for p in info.value.problems] == [
        "spec.container.resourceLimits.cpus",
        "spec.tasks[0].dependencies[0]",
        "spec.tasks[0].dependencies[1]",
    ]


# -- the real kube-apiserver ------------------------------------------------------------------------


def manifest(name: str, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {"tasks": [{"id": "a", "title": "A"}], "container": {"resourceLimits": limits}},
    }


def dry_run(cluster: LocalCluster, namespace: str, doc: dict[str, Any]) -> str:
    return kubectl(cluster, "apply", "-n", namespace, "--dry-run=server", "-f", "-", check=False,
                   input=json.dumps(doc))  # fmt: skip


@pytest.mark.cluster
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_apiserver_stores_every_notation_as_written(
    cluster: LocalCluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, (memory, cpus) in enumerate(NOTATIONS):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(prd({"memory": memory, "cpus": cpus}, sprint_id=f"limits-{i}")))
        code, out, _ = run_cli(capsys, "import", str(path))  # what `sprintctl import | kubectl apply` sends
        assert code == 0
        kubectl(cluster, "apply", "-n", namespace, "-f", "-", input=out)
        stored = json.loads(kubectl(cluster, "get", "sprint", f"limits-{i}", "-n", namespace, "-o", "json"))
        assert stored["spec"]["container"]["resourceLimits"] == {"memory": memory, "cpus": cpus}
    empty = manifest("empty-limits", {})
    assert "created" in dry_run(cluster, namespace, empty)


@pytest.mark.cluster
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"memory": "1G"}, "is ambiguous: Kubernetes reads k, M, G, T, P, E as powers of 1000"),
        ({"memory": "64k"}, "is ambiguous"),
        ({"memory": "lots"}, "resourceLimits.memory in body should match"),
        ({"memory": 512}, "a number of bytes must be at least 4194304 (4Mi)"),
        ({"memory": "1m"}, "must be from 4Mi to 1Pi"),
        ({"memory": "2048Pi"}, "must be from 4Mi to 1Pi"),
        ({"memory": 1.5}, "must be of type integer,string"),
        ({"cpus": 0}, "resourceLimits.cpus in body should be greater than 0"),
        ({"cpus": 300}, "resourceLimits.cpus in body should be less than or equal to 256"),
        ({"cpus": "0"}, "resourceLimits.cpus in body should match"),
        ({"cpus": "two"}, "resourceLimits.cpus in body should match"),
    ],
)
def test_the_apiserver_refuses_what_the_model_refuses(
    cluster: LocalCluster, namespace: str, limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput):
        validate_sprint_spec(manifest("x", limits)["spec"])
    output = dry_run(cluster, namespace, manifest("bad-limits", limits))
    assert "is invalid" in output and message in output, output


# -- real containers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanRuntime]:
    build_base_image()
    yield from runtime_for(tmp_path_factory.mktemp("limits-state"))


@pytest.fixture
def sprint(runtime: PodmanRuntime) -> Iterator[str]:
    sprint_id = f"lim{uuid.uuid4().hex[:8]}"
    yield sprint_id
    remove_sprint(runtime, sprint_id)


READ_CGROUP = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
)


def cgroup_limits(
    runtime: PodmanRuntime, tmp_path: Path, sprint: str, task: str, spec: dict[str, Any]
) -> list[int]:
    """Run a container with the limits the operator derives from a Sprint spec; read its cgroup."""
    configured = validate_sprint_spec(spec).container.resource_limits  # type: ignore[union-attr]
    limits, timeout = retry.effective_limits(configured, {}, 60)
    run = task_spec(
        tmp_path / task, sprint, task, ["sh", "-c", READ_CGROUP], limits=limits, timeout_s=timeout
    )
    outcome = runtime.wait(runtime.start_task(run), run.timeout_s)
    assert outcome.exit_code == 0, outcome.log_path.read_text()
    return [int(line) for line in outcome.log_path.read_text().split()]


@pytest.mark.podman
def test_every_notation_is_the_cgroup_limit_of_a_real_container(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    for i, (memory, cpus) in enumerate(NOTATIONS):
        spec = {
            "tasks": [{"id": "a", "title": "A"}],
            "container": {"resourceLimits": {"memory": memory, "cpus": cpus}},
        }
        limit, quota, period = cgroup_limits(runtime, tmp_path, sprint, f"n{i}", spec)
        assert limit == dict(MEMORY)[memory], (memory, limit)
        assert quota * 10**9 // period == dict(CPUS)[cpus], (cpus, quota, period)


@pytest.mark.podman
def test_an_empty_resource_limits_runs_without_memory_or_cpu_limits(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = {"tasks": [{"id": "a", "title": "A"}], "container": {"resourceLimits": {}}}
    limit, quota, _ = cgroup_limits(runtime, tmp_path, sprint, "empty", spec)
    assert limit > 1 << 60 and quota == -1  # the kernel's "unlimited"
