"""`sprintctl validate FILE...`: check Sprint manifests (YAML/JSON) and PRD sprint definitions (JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..manifest import validate_sprint_manifest
from ..model import SprintSpec
from ..prd import validate_prd
from ..sourcefile import load_documents

HELP = "Validate Sprint manifests or PRD sprint definitions; one line per problem, exit 1 when invalid."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a .yaml manifest or a .json PRD")


def is_manifest(doc: Any) -> bool:
    """A Kubernetes object (it names its kind), as opposed to a PRD sprint definition."""
    return isinstance(doc, dict) and ("kind" in doc or "apiVersion" in doc)


def validate_document(doc: Any) -> SprintSpec:
    return validate_sprint_manifest(doc)[1] if is_manifest(doc) else validate_prd(doc)


def validate_file(path: Path) -> list[SprintSpec]:
    """The sprints of a file; InvalidInput whose problems are prefixed with the file (and document)."""
    _, docs = load_documents(path)
    if not docs:
        raise InvalidInput(f"{path}: empty; expected a Sprint manifest or a PRD sprint definition")
    specs, problems = [], []
    for number, doc in enumerate(docs, start=1):
        where = f"{path} (document {number})" if len(docs) > 1 else str(path)
        try:
            specs.append(validate_document(doc))
        except InvalidInput as exc:
            problems += [f"{where}: {line}" for line in exc.problems]
    if problems:
        raise InvalidInput(f"{path}: invalid", problems)
    return specs


def summary(path: Path, specs: list[SprintSpec]) -> str:
    tasks = sum(len(spec.tasks) for spec in specs)
    sprints = f"{len(specs)} sprints, " if len(specs) > 1 else ""
    return f"{path}: valid ({sprints}{tasks} task{'s' if tasks != 1 else ''})"


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    for path in args.files:
        try:
            print(summary(path, validate_file(path)))
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise InvalidInput("invalid input", problems)
    return 0
