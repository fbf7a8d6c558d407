"""`sprintctl start SPRINT`: start a suspended sprint (sets spec.suspend=false)."""

from __future__ import annotations

import argparse

from ..kube import SPRINTS
from ._resources import add_target, connect, get_sprint

HELP = "start a suspended sprint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=False)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    sprint = get_sprint(kube, args)
    kube.patch(SPRINTS, args.namespace, args.sprint, {"spec": {"suspend": False}})
    kube.event(sprint, "StartRequested", "start requested with sprintctl")
    print(f"sprint {args.sprint} started")
    return 0
