"""Shared helpers for the commands that act on resources through the Kubernetes API."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidInput
from ..kube import SPRINTS, TASKS, Kube
from ..model import task_resource_name
from ..nonces import annotate


def add_target(parser: argparse.ArgumentParser, task: bool) -> None:
    parser.add_argument("sprint", help="the Sprint's name")
    if task:
        parser.add_argument("task", help="the task id")
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--kubeconfig", default=None)


def connect(args: argparse.Namespace) -> Kube:
    return Kube.from_kubeconfig(args.kubeconfig)


def get_sprint(kube: Kube, args: argparse.Namespace) -> dict[str, Any]:
    sprint = kube.get(SPRINTS, args.namespace, args.sprint)
    if sprint is None:
        raise InvalidInput(f"sprint {args.sprint!r} not found in namespace {args.namespace!r}")
    return sprint


def get_task(kube: Kube, args: argparse.Namespace) -> dict[str, Any]:
    name = task_resource_name(args.sprint, args.task)
    task = kube.get(TASKS, args.namespace, name)
    if task is None:
        raise InvalidInput(f"task {args.task!r} of sprint {args.sprint!r} not found in {args.namespace!r}")
    return task


def request_task_action(args: argparse.Namespace, annotation: str, verb: str) -> int:
    """Annotate a Task with a fresh nonce for `annotation` and record it as an Event."""
    kube = connect(args)
    task = get_task(kube, args)
    reason = f"{verb.capitalize()}Requested"
    annotate(kube, TASKS, task, annotation, reason, f"{verb} of task {args.task} requested with sprintctl")
    print(f"{verb} requested for task {args.task} of sprint {args.sprint}")
    return 0
