"""Argo CD health checks (manifests/argocd/**/health.lua) run by a real Lua interpreter against the
sample objects listed in each kind's health_test.yaml (Argo CD's own test layout).

Argo CD runs these scripts in gopher-lua (Lua 5.1 semantics); the scripts use only what 5.1 and 5.4
share, and numbers are passed as Argo CD passes JSON numbers (plain Lua numbers).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHECKS = REPO / "manifests" / "argocd" / "sprintorchestrator.dev"
LUA = shutil.which("lua5.4") or shutil.which("lua")
KINDS = ("Sprint", "Task")


def lua_literal(value: Any) -> str:
    """A Python value decoded from YAML/JSON as a Lua expression (lists are 1-based sequences)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_lua_char(b) for b in value.encode()) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _lua_char(byte: int) -> str:
    char = chr(byte)
    return char if (32 <= byte < 127 and char not in '"\\') else f"\\{byte:03d}"


def run_health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """Run a health script the way Argo CD does: `obj` is a global, the script returns `hs`."""
    if LUA is None:
        pytest.fail("no Lua interpreter: run hack/setup.sh (installs Debian's lua5.4)")
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = (function()\n{script.read_text()}\nend)()\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    result = subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"{script} failed in Lua:\n{result.stderr}")
    status, _, message = result.stdout.partition("\n")
    return status, message


def cases() -> list[Any]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((CHECKS / kind / "health_test.yaml").read_text())
        for case in spec["tests"]:
            out.append(
                pytest.param(kind, case["inputPath"], case["healthStatus"], id=f"{kind}-{case['inputPath']}")
            )
    return out


@pytest.mark.parametrize(("kind", "input_path", "expected"), cases())
def test_health_check_maps_the_sample_status(kind: str, input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((CHECKS / kind / input_path).read_text())
    assert run_health(CHECKS / kind / "health.lua", obj) == (expected["status"], expected["message"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_sample_is_listed_and_every_health_state_is_covered(kind: str) -> None:
    spec = yaml.safe_load((CHECKS / kind / "health_test.yaml").read_text())
    listed = {case["inputPath"] for case in spec["tests"]}
    on_disk = {f"testdata/{p.name}" for p in (CHECKS / kind / "testdata").glob("*.yaml")}
    assert listed == on_disk
    states = {case["healthStatus"]["status"] for case in spec["tests"]}
    assert states == {"Progressing", "Healthy", "Degraded", "Suspended"}


def test_strings_with_quotes_and_non_ascii_reach_lua_intact() -> None:
    obj = {"status": {"column": "failed", "error": 'quote " backslash \\ newline\n é'}}
    status, message = run_health(CHECKS / "Task" / "health.lua", obj)
    assert (status, message) == ("Degraded", 'Failed: quote " backslash \\ newline\n é')


def test_a_script_error_is_reported_not_swallowed(tmp_path: Path) -> None:
    broken = tmp_path / "health.lua"
    broken.write_text("return obj.status.column.missing\n")
    with pytest.raises(AssertionError, match="failed in Lua"):
        run_health(broken, {"status": {}})
