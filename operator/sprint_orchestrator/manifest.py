"""Sprint manifests (apiVersion, kind, metadata, spec): building them and validating them at the edge."""

from __future__ import annotations

import re
from typing import Any

from . import API_VERSION
from .errors import InvalidInput
from .model import SprintSpec, validate_sprint_spec
from .validators import check_safe_id

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def dns_name(text: str) -> str:
    """A DNS-1123 label derived from an id: "Sprint_42.A" -> "sprint-42-a". Raises when nothing is left."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    if not name:
        raise InvalidInput(f"{text!r} has no letters or digits to make a resource name from")
    return name


def sprint_manifest(name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": "Sprint", "metadata": metadata, "spec": spec}


def _metadata_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION!r}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "Sprint":
        problems.append(f"kind: expected 'Sprint', got {doc.get('kind')!r}")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not _SUBDOMAIN.fullmatch(name):
        problems.append(
            f"metadata.name: {name!r} is not a DNS-1123 name (lowercase letters, digits, '-', '.')"
        )
    return problems


def validate_sprint_manifest(doc: Any) -> tuple[str, SprintSpec]:
    """(metadata.name, spec) of a Sprint manifest; InvalidInput lists every problem with its key path."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"expected a Sprint manifest (a mapping), got {type(doc).__name__}")
    problems = _metadata_problems(doc)
    spec: SprintSpec | None = None
    try:
        if "spec" not in doc:
            raise InvalidInput("spec: required field is missing")
        spec = validate_sprint_spec(doc["spec"])
    except InvalidInput as exc:
        problems += exc.problems
    name = str(doc.get("metadata", {}).get("name"))
    if spec is not None and spec.sprint_id is None and not problems:
        try:
            check_safe_id(name)
        except ValueError:
            problems.append(f"metadata.name: {name!r} must be a valid spec.sprintId (at most 63 characters)")
    if problems or spec is None:
        raise InvalidInput("invalid Sprint manifest", problems)
    return name, spec
