"""`sprintctl retry SPRINT TASK`: ask the operator to retry a task (an annotation + an Event)."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_RETRY as RETRY
from ..kube import TASKS
from ._resources import add_target, annotate, connect, get_task

HELP = "retry a failed task or one in review"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    task = get_task(kube, args)
    annotate(
        kube, TASKS, task, RETRY, "RetryRequested", f"retry of task {args.task} requested with sprintctl"
    )
    print(f"retry requested for task {args.task} of sprint {args.sprint}")
    return 0
