"""`sprintctl approve SPRINT TASK`: ask the operator to approve a task (an annotation + an Event)."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_APPROVE as APPROVE
from ..kube import TASKS
from ._resources import add_target, annotate, connect, get_task

HELP = "approve a task waiting in review: merge it as it is"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    task = get_task(kube, args)
    annotate(
        kube,
        TASKS,
        task,
        APPROVE,
        "ApproveRequested",
        f"approve of task {args.task} requested with sprintctl",
    )
    print(f"approve requested for task {args.task} of sprint {args.sprint}")
    return 0
