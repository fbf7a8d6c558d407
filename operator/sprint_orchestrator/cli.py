"""`sprintctl`: the command-line front end.

Dispatch is a table: each command is a module in `sprint_orchestrator.commands` exposing
`HELP: str`, `add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their
command runs, so `sprintctl validate` does not pay for kopf or the Kubernetes client.
This is the one place that maps our errors to exit codes; no command prints a traceback for them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from .errors import InvalidInput, OrchestratorError

# command name -> module under sprint_orchestrator.commands
COMMANDS: dict[str, str] = {
    "operator": "operator",
    "dashboard": "dashboard",
    "start": "start",
    "retry": "retry",
    "approve": "approve",
    "request-changes": "request_changes",
    "diff": "diff",
    "cancel": "cancel",
    "status": "status",
    "report": "report",
    "crds": "crds",
    "validate": "validate",
    "import": "import_",
    "usage": "usage",
    "doctor": "doctor",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"sprint_orchestrator.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sprintctl", description="Run sprints of AI-agent coding tasks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_load(args.command).run(args))
    except InvalidInput as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
