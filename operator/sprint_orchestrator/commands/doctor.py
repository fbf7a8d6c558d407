"""`sprintctl doctor`: is this machine ready to run sprints? One line per check, exit 1 on a problem.

It checks what a sprint needs from the host, the way the operator uses it: the container runtime runs a
trivial hardened task container (no network, capabilities dropped, read-only root, an init process,
limits), and the model API keys the configured default team needs are present. It never prints a key.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import OrchestratorError
from ..runtime import RUNTIMES
from ..settings import from_env
from ..teams import missing_key

HELP = "check that this machine can run sprints (container runtime, base image, model API keys)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, help="where the check's Podman service and logs live (default: a temp dir)"
    )
    parser.add_argument(
        "--skip-keys", action="store_true", help="do not report missing model API keys (tests, the demo)"
    )


def run(args: argparse.Namespace) -> int:
    settings = from_env()
    if args.state_dir is not None:
        settings = replace(settings, state_dir=args.state_dir)
    problems = [*_runtime_problems(settings)]
    if not args.skip_keys:
        problems += _key_problems(settings)
    for line in problems:
        print(f"doctor: {line}", file=sys.stderr)
    if not problems:
        print("doctor: ok (a hardened task container ran; the default team has its model key)")
    return 1 if problems else 0


def _runtime_problems(settings: object) -> list[str]:
    config = getattr(settings, "config", None)
    name = getattr(getattr(config, "containers", None), "runtime", "podman")
    factory = RUNTIMES.get(name)
    if factory is None:
        return [f"containers.runtime: {name!r} is not available here (choose one of {', '.join(RUNTIMES)})"]
    try:
        factory(settings).close()  # type: ignore[arg-type]
    except OrchestratorError as exc:
        return [str(exc)]
    return []


def _key_problems(settings: object) -> list[str]:
    config = getattr(settings, "config", None)
    team = getattr(getattr(config, "orchestrator", None), "default_team", "claude-code")
    problem = missing_key(team, getattr(settings, "api_keys", {}))
    return [problem] if problem else []
