"""`sprintctl import FILE`: print the Sprint manifest (YAML) of a PRD sprint definition."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import InvalidInput
from ..model import TeamType
from ..prd import manifest_from_prd
from ..sourcefile import load_documents
from .validate import is_manifest

HELP = "Turn a PRD sprint definition (JSON) into a Sprint manifest (YAML) for kubectl apply."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the sprint definition (PRD JSON)")
    parser.add_argument("-n", "--namespace", help="set metadata.namespace")
    parser.add_argument(
        "--team",
        choices=[t.value for t in TeamType],
        help="spec.team.type (default: unset, so the operator's default team runs it: claude-code unless "
        "configured; demo is the deterministic stand-in for tests)",
    )
    parser.add_argument("--model", help="spec.team.model")
    parser.add_argument("--recipes", help="spec.team.recipes (demo team: one folder per task id)")


def team_overrides(args: argparse.Namespace) -> dict[str, Any]:
    team = {"type": args.team, "model": args.model, "recipes": args.recipes}
    team = {key: value for key, value in team.items() if value is not None}
    return {"team": team} if team else {}


def run(args: argparse.Namespace) -> int:
    _, docs = load_documents(args.file)
    if len(docs) != 1:
        raise InvalidInput(f"{args.file}: expected one sprint definition, found {len(docs)} documents")
    if is_manifest(docs[0]):
        raise InvalidInput(f"{args.file}: already a Sprint manifest (use `sprintctl validate`)")
    try:
        manifest = manifest_from_prd(docs[0], args.namespace, team_overrides(args))
    except InvalidInput as exc:
        raise InvalidInput(str(exc), [f"{args.file}: {line}" for line in exc.problems]) from None
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False, width=110, allow_unicode=True))
    return 0
