"""`sprintctl retry SPRINT TASK`: ask the operator to retry a task (an annotation + an Event)."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_RETRY
from ._resources import add_target, request_task_action

HELP = "retry a failed task or one in review"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)


def run(args: argparse.Namespace) -> int:
    return request_task_action(args, ANNOTATION_RETRY, "retry")
