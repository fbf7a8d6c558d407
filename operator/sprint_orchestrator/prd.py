"""The PRD's sprint definition (snake_case JSON from the planning system) <-> a Sprint manifest.

The mapping is one table per level, used in both directions; validation is the Sprint model's, with
the key paths of its errors translated back, so a problem in a PRD file reads "tasks[2].task_id: ...".
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from .errors import InvalidInput
from .manifest import dns_name, sprint_manifest
from .model import SprintSpec, spec_problems, validate_sprint_spec
from .validators import key_path

# PRD key -> Sprint spec key, per level. Keys not listed are the same in both (description, title...).
TOP = {
    "sprint_id": "sprintId",
    "sprint_name": "displayName",
    "container_config": "container",
    "sprint_success_criteria": "successCriteria",
    "integration_tests": "integrationTests",
    "max_parallel_tasks": "maxParallelTasks",
}
CONTAINER = {
    "base_image": "baseImage",
    "environment_vars": "environment",
    "resource_limits": "resourceLimits",
}
LIMITS = {"timeout_seconds": "timeoutSeconds"}
TASK = {
    "task_id": "id",
    "success_criteria": "successCriteria",
    "estimated_tokens": "estimatedTokens",
    "files_to_modify": "filesToModify",
    "test_requirements": "testRequirements",
    "allow_no_changes": "allowNoChanges",
}


# Spec keys the PRD format has no place for; `prd_from_spec` leaves them out.
NOT_IN_PRD = ("suspend", "repository", "team", "tokenBudget", "after", "policy")


def _invert(table: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def _rename(data: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(key, key): value for key, value in data.items()}


def map_keys(data: dict[str, Any], *, to_spec: bool) -> dict[str, Any]:
    """Rename the keys of a PRD definition to Sprint spec keys (to_spec) or back; values are untouched."""

    def table(forward: dict[str, str]) -> dict[str, str]:
        return forward if to_spec else _invert(forward)

    out = _rename(data, table(TOP))
    container, limits = (
        ("container", "resourceLimits") if to_spec else ("container_config", "resource_limits")
    )
    if isinstance(out.get(container), dict):
        out[container] = _rename(out[container], table(CONTAINER))
        if isinstance(out[container].get(limits), dict):
            out[container][limits] = _rename(out[container][limits], table(LIMITS))
    if isinstance(out.get("tasks"), list):
        out["tasks"] = [_rename(t, table(TASK)) if isinstance(t, dict) else t for t in out["tasks"]]
    return out


_BELOW = {"container": CONTAINER, "resourceLimits": LIMITS, "tasks": TASK}


def prd_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A spec key path in PRD names: ("tasks", 2, "id") -> ("tasks", 2, "task_id")."""
    out: list[int | str] = []
    table = _invert(TOP)
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            continue
        out.append(table.get(part, part))
        table = _invert(_BELOW.get(part, {}))
    return tuple(out)


_PATH_PART = re.compile(r"\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\.?([A-Za-z_]\w*)")


def _parse_path(text: str) -> tuple[int | str, ...]:
    parts: list[int | str] = []
    for index, quoted, name in _PATH_PART.findall(text):
        parts.append(int(index) if index else quoted or name)
    return tuple(parts)


def _prd_problems(exc: ValidationError, spec: dict[str, Any]) -> list[str]:
    lines = []
    for line in spec_problems(exc, spec, ""):
        path, sep, rest = line.partition(": ")
        lines.append(key_path("", prd_path(_parse_path(path))) + sep + rest if sep else line)
    return lines


def validate_prd(data: Any) -> SprintSpec:
    """The Sprint spec of a PRD sprint definition; InvalidInput names every problem by its PRD path."""
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a sprint definition (a JSON object), got {type(data).__name__}")
    if "sprint_id" not in data:
        raise InvalidInput("sprint_id: required field is missing")
    spec = map_keys(data, to_spec=True)
    try:
        return SprintSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidInput("invalid sprint definition", _prd_problems(exc, spec)) from None


def sprint_from_prd(data: Any) -> dict[str, Any]:
    """The Sprint spec (camelCase, only the fields the definition sets) of a PRD sprint definition."""
    spec = validate_prd(data)
    return spec.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


def manifest_from_prd(
    data: Any, namespace: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A full Sprint manifest; metadata.name is derived from sprint_id ("Sprint_7" -> "sprint-7").

    `overrides` (camelCase spec keys, e.g. {"team": {"type": "codex"}}) are merged on
    top, for what the PRD format cannot say.
    """
    spec = {**sprint_from_prd(data), **(overrides or {})}
    if overrides:
        validate_sprint_spec(spec)
    return sprint_manifest(dns_name(str(spec["sprintId"])), spec, namespace)


def prd_from_spec(spec: SprintSpec, sprint_name: str | None = None) -> dict[str, Any]:
    """The PRD sprint definition of a Sprint spec (fields the PRD cannot hold are left out)."""
    dumped = {k: v for k, v in spec.dump().items() if k not in NOT_IN_PRD}
    dumped["sprintId"] = spec.sprint_id or sprint_name
    if dumped["sprintId"] is None:
        raise InvalidInput("sprint_id: the spec has no sprintId; pass the Sprint's name")
    return map_keys(dumped, to_spec=False)
