"""`sprintctl approve SPRINT TASK`: ask the operator to approve a task (an annotation + an Event)."""

from __future__ import annotations

import argparse

from .. import ANNOTATION_APPROVE
from ._resources import add_target, request_task_action

HELP = "approve a task waiting in review: merge it as it is"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)


def run(args: argparse.Namespace) -> int:
    return request_task_action(args, ANNOTATION_APPROVE, "approve")
