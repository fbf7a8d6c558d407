"""`sprintctl report SPRINT [--json]`: the sprint report (committed as .sprint/reports/{id}.md)."""

from __future__ import annotations

import argparse
import json

from ..errors import InvalidInput
from ._resources import add_target, connect, get_sprint

HELP = "print a finished sprint's report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=False)
    parser.add_argument("--json", action="store_true", help="print the report's status block as JSON")


def run(args: argparse.Namespace) -> int:
    sprint = get_sprint(connect(args), args)
    report = (sprint.get("status") or {}).get("report") or {}
    if not report:
        raise InvalidInput(f"sprint {args.sprint!r} has no report yet (it is written when its tasks settle)")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report.get("markdown") or report.get("summary") or "")
    return 0
