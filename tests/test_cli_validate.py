"""`sprintctl validate`, `sprintctl import`: one line per problem, exit codes, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sprint_orchestrator import cli
from sprint_orchestrator.manifest import validate_sprint_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.mark.parametrize(
    ("name", "tasks"), [("sprint.yaml", 6), ("sprint.json", 6), ("sprint-trouble.yaml", 4)]
)
def test_the_examples_are_valid(name: str, tasks: int, capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES / name
    assert run("validate", str(path), capsys=capsys) == (0, [f"{path}: valid ({tasks} tasks)"], [])


def test_an_invalid_manifest_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "sprint.yaml").read_text())
    manifest["spec"]["tasks"][1]["id"] = "a..b"
    manifest["spec"]["tasks"][2]["priority"] = "urgent"
    manifest["spec"]["maxParallelTasks"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    code, out, err = run("validate", str(path), capsys=capsys)
    assert code == 1 and out == []
    assert len(err) == 4
    assert err[0].startswith(f"{path}: spec.tasks[1].id: 'a..b' is not safe as a git ref component")
    assert err[1].startswith(f"{path}: spec.tasks[2].priority: Input should be 'high', 'medium' or 'low'")
    assert err[2].startswith(f"{path}: spec.maxParallelTasks: Input should be greater than or equal to 1")
    # the renamed task leaves a dependency pointing nowhere: reported in the same round
    assert err[3] == f"{path}: spec.tasks[3].dependencies[1]: 'lines' is not the id of a task in this sprint"


def test_a_cycle_in_a_prd_file_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((EXAMPLES / "sprint.json").read_text())
    data["tasks"][0]["dependencies"] = ["docs"]
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps(data))
    code, _, err = run("validate", str(path), capsys=capsys)
    assert (code, err) == (1, [f"{path}: tasks: dependency cycle words -> docs -> cli -> report -> words"])


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", '{"sprint_id": "x",\n  "tasks": [}', "bad.json:2:13: invalid JSON: Expecting value"),
        ("bad.yaml", "spec:\n  tasks: [\n", "bad.yaml:3:1: invalid YAML: expected the node content"),
        ("empty.yaml", "", "empty.yaml: empty; expected a Sprint manifest or a PRD sprint definition"),
        ("list.yaml", "- 1\n", "list.yaml: expected a sprint definition (a JSON object), got list"),
        ("bin.json", "\udcff", "bin.json: not UTF-8 text"),
    ],
)
def test_unreadable_input_is_one_line_naming_the_file(
    tmp_path: Path, name: str, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, _, err = run("validate", str(path), capsys=capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith(f"{tmp_path}/{expected}"), err


def test_a_missing_file_and_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("validate", str(tmp_path / "nope.yaml"), str(tmp_path), capsys=capsys)
    assert code == 1
    assert err == [f"{tmp_path}/nope.yaml: no such file", f"{tmp_path}: is a directory, not a file"]


def test_several_documents_are_each_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [(EXAMPLES / n).read_text() for n in ("sprint.yaml", "sprint-trouble.yaml")]
    path = tmp_path / "both.yaml"
    path.write_text(texts[0] + "\n---\n" + texts[1])
    assert run("validate", str(path), capsys=capsys) == (0, [f"{path}: valid (2 sprints, 10 tasks)"], [])
    path.write_text(texts[0] + "\n---\n" + texts[1].replace("id: buggy", "id: words"))
    code, _, err = run("validate", str(path), capsys=capsys)
    assert code == 1 and err[0].startswith(
        f"{path} (document 2): spec.tasks[3].id: duplicate task id 'words'"
    )


def test_import_prints_a_manifest_that_validates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        "import", str(EXAMPLES / "sprint.json"), "-n", "demo", "--recipes", "examples/demo-team/textstats-1",
        capsys=capsys,
    )  # fmt: skip
    assert (code, err) == (0, [])
    manifest = yaml.safe_load("\n".join(out))
    name, spec = validate_sprint_manifest(manifest)
    assert name == "textstats-1" and manifest["metadata"]["namespace"] == "demo"
    assert spec.team.recipes == "examples/demo-team/textstats-1"
    assert [t.id for t in spec.tasks] == ["words", "lines", "chars", "report", "cli", "docs"]


def test_import_refuses_a_manifest_and_reports_prd_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("import", str(EXAMPLES / "sprint.yaml"), capsys=capsys)
    assert code == 1 and "already a Sprint manifest" in err[0]
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"sprint_id": "s", "tasks": [{"task_id": "a", "title": "A", "priority": "now"}]})
    )
    code, _, err = run("import", str(path), capsys=capsys)
    assert code == 1 and err[0].startswith(f"{path}: tasks[0].priority: Input should be")


def test_the_installed_command_exits_without_a_traceback(tmp_path: Path) -> None:
    sprintctl = shutil.which("sprintctl", path=str(Path(sys.executable).parent))
    assert sprintctl, "sprintctl is installed next to the interpreter"
    path = tmp_path / "bad.json"
    path.write_text("{")
    result = subprocess.run([sprintctl, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"{path}:1:2: invalid JSON: Expecting property name enclosed in double quotes\n"
