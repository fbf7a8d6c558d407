"""Generate the Sprint and Task CustomResourceDefinitions from the pydantic models.

Pydantic emits JSON Schema 2020-12 with `$defs`; a CRD needs a *structural* OpenAPI v3 schema:
every node typed (or int-or-string, or preserving unknown fields), no `$ref`, no `anyOf` of a type
and null, `exclusiveMinimum` as a boolean, no `additionalProperties: false`. `structural()` converts
one into the other and refuses anything it cannot express, so a model change that would make an
unstructural CRD fails here, loudly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import GROUP, VERSION
from .model import SprintSpec, TaskSpec
from .status import SprintStatus, TaskStatus

CATEGORY = "sprint-orchestrator"
_DROP = {"title", "$defs"}
_SCALARS = (str, int, float, bool)

SPRINT_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Done", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Tokens", "type": "string", "jsonPath": ".status.tokenSummary"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
TASK_COLUMNS = [
    {"name": "Sprint", "type": "string", "jsonPath": ".spec.sprintRef"},
    {"name": "Column", "type": "string", "jsonPath": ".status.column"},
    {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
    {"name": "Tokens", "type": "integer", "jsonPath": ".status.tokens.actual"},
    {"name": "Container", "type": "string", "jsonPath": ".status.containerHealth"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class SchemaError(ValueError):
    """The models use a construct a structural CRD schema cannot express."""


def structural(node: dict[str, Any], defs: dict[str, Any], *, status: bool) -> dict[str, Any]:
    """One pydantic JSON-schema node -> a structural OpenAPI v3 node (see the module docstring)."""
    node = _inline(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default":
            if not status and isinstance(value, _SCALARS):
                out[key] = value
        elif key == "properties":
            out[key] = {name: structural(sub, defs, status=status) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs, status=status)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs, status=status)
            elif value is not False:
                raise SchemaError(f"additionalProperties={value!r} is not structural")
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        else:
            out[key] = value
    untyped = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")
    if "type" not in out and not any(out.get(key) for key in untyped):
        raise SchemaError(f"schema node without a type: {node}")
    return out


def _inline(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Resolve `$ref` and `anyOf: [X, null]` (keeping the node's own description and default)."""
    extra = {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _inline({**target, **extra}, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):  # int-or-string keeps its anyOf
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(f"a union of several types is not structural: {node['anyOf']}")
        merged = {**_inline(options[0], defs), **extra}
        if extra.get("default", 0) is None:
            merged.pop("default")
        return merged
    return node


def model_schema(model: type[Any], *, status: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return structural(raw, raw.get("$defs", {}), status=status)


def _status_schema(model: type[Any]) -> dict[str, Any]:
    """The status' schema; a model's CREATED fields become the API server's defaults for a new object
    (a status set on create is dropped, then defaulted: `status: {}` and each field's default)."""
    schema = model_schema(model, status=True)
    schema.pop("description", None)
    created = getattr(model, "CREATED", None) or {}
    if created:
        schema["default"] = {}
        for name, value in created.items():
            if name not in schema["properties"]:
                raise SchemaError(f"{model.__name__}.CREATED names {name!r}, which the status does not have")
            schema["properties"][name]["default"] = value
    return schema


def crd(
    kind: str, plural: str, short: str, spec: type[Any], status: type[Any], columns: list[Any]
) -> dict[str, Any]:
    root = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(spec, status=False),
            "status": _status_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def sprint_crd() -> dict[str, Any]:
    return crd("Sprint", "sprints", "spr", SprintSpec, SprintStatus, SPRINT_COLUMNS)


def task_crd() -> dict[str, Any]:
    return crd("Task", "tasks", "stask", TaskSpec, TaskStatus, TASK_COLUMNS)


HEADER = "# Generated from operator/sprint_orchestrator/{model,status}.py by `sprintctl crds`. Do not edit.\n"


def render(doc: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)


def rendered() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {"sprints.yaml": render(sprint_crd()), "tasks.yaml": render(task_crd())}


def stale_files(directory: Path) -> list[str]:
    """Names of CRD files in `directory` that are missing or differ from the models."""
    stale = []
    for name, text in rendered().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written
