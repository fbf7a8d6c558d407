"""`sprintctl operator`: run the operator (kopf) against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

HELP = "run the operator: watch Sprints and Tasks and run them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument("--log-format", choices=["plain", "full", "json"], default="json")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--liveness", default=None, help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from .. import (
        handlers,  # noqa: F401  (registers the handlers)
        heap,
    )
    from ..errors import InvalidInput
    from ..settings import from_env
    from ..statedir import prepare
    from ..tempdirs import claim

    # The state directory is checked before anything is written into it (statedir.py); then, before
    # kopf logs in, temporary files (the client writes the kubeconfig's certificates) go under it.
    state_dir = from_env().state_dir
    try:
        prepare(state_dir)
    except InvalidInput as exc:
        print(f"sprintctl operator: {exc}", file=sys.stderr)
        return 2
    claim(state_dir)
    heap.tune()  # before kopf's and the clients' threads make their malloc arenas
    if args.namespace:  # the settings the handlers read name them too (the diff endpoint checks them)
        os.environ["SPRINT_ORCHESTRATOR_NAMESPACES"] = ",".join(args.namespace)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness,
        )
    )
    return 0
