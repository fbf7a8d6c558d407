"""`sprintctl approve SPRINT TASK [--commit SHA]`: ask the operator to merge a task in review, exactly
at the commit reviewed (an annotation pair + an Event)."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_APPROVE, ANNOTATION_APPROVE_COMMIT
from ..errors import InvalidInput
from ..kube import TASKS
from ..nonces import annotate
from ._resources import add_target, connect, get_task

HELP = "approve a task waiting in review: merge exactly the commit reviewed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)
    parser.add_argument(
        "--commit", default=None, help="the commit you reviewed (default: the task's commit now)"
    )


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    task = get_task(kube, args)
    current = str((task.get("status") or {}).get("commit") or "")
    if args.commit and args.commit != current:
        raise InvalidInput(
            f"--commit {args.commit}: task {args.task} is now at {current or 'no commit'}; review it again"
        )
    commit = args.commit or current
    extra = {ANNOTATION_APPROVE_COMMIT: commit} if commit else {}
    message = f"approve of task {args.task} at {commit[:12] or 'no commit'} requested with sprintctl"
    annotate(kube, TASKS, task, ANNOTATION_APPROVE, "ApproveRequested", message, extra)
    print(f"approve requested for task {args.task} of sprint {args.sprint} at {commit[:12] or 'no commit'}")
    return 0
