"""`sprintctl cancel SPRINT`: stop a sprint's containers and end it as Failed; main is not touched."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_CANCEL
from ..kube import SPRINTS
from ..nonces import annotate
from ._resources import add_target, connect, get_sprint

HELP = "cancel a sprint: stop its containers; main is not changed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=False)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    sprint = get_sprint(kube, args)
    annotate(kube, SPRINTS, sprint, ANNOTATION_CANCEL, "CancelRequested", "cancel requested with sprintctl")
    print(f"cancel requested for sprint {args.sprint}")
    return 0
