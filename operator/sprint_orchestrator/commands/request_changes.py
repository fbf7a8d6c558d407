"""`sprintctl request-changes SPRINT TASK -m TEXT [--comment PATH:LINE=TEXT]...`: send a task in review
back to its agent with a review (annotations + an Event, as the board and `kubectl annotate` do)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from .. import ANNOTATION_REQUEST_CHANGES, ANNOTATION_REVIEW
from ..errors import InvalidInput
from ..kube import TASKS
from ..nonces import annotate
from ..review import parse_review
from ._resources import add_target, connect, get_task

HELP = "request changes on a task in review: its agent continues from its commit with your comments"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)
    parser.add_argument("--message", "-m", default="", help="the review's message")
    parser.add_argument(
        "--comment",
        "-c",
        action="append",
        default=[],
        metavar="[PATH[:LINE]=]TEXT",
        help="a comment on a line (src/a.py:12=text), a file (src/a.py=text) or the task (text)",
    )
    parser.add_argument("--by", default=None, help="the reviewer's name (default: the local user)")


def parse_comment_arg(text: str, index: int) -> dict[str, Any]:
    """ "src/a.py:12=fix this" -> {"path": "src/a.py", "line": 12, "body": "fix this"}."""
    anchor, sep, body = text.partition("=")
    if not sep or " " in anchor:
        return {"body": text}
    path, colon, line = anchor.rpartition(":")
    if colon and line.isdigit():
        return {"path": path, "line": int(line), "body": body}
    if colon and not line.isdigit():
        raise InvalidInput(f"--comment[{index}]: {anchor!r}: the line after ':' must be a number")
    return {"path": anchor, "body": body}


def run(args: argparse.Namespace) -> int:
    comments = [parse_comment_arg(c, i) for i, c in enumerate(args.comment)]
    by = args.by or f"{getpass.getuser()} (sprintctl)"
    kube = connect(args)
    task = get_task(kube, args)
    status = task.get("status") or {}
    if status.get("phase") != "Review":
        raise InvalidInput(f"task {args.task} is {status.get('phase')}: request-changes needs Review")
    review = parse_review(
        {"by": by, "message": args.message, "comments": comments, "commit": status.get("commit")}
    )
    commit = str(status.get("commit") or "")[:12]
    message = f"changes to task {args.task} requested with sprintctl by {by} on {commit}"
    extra = {ANNOTATION_REVIEW: review.annotation()}
    annotate(kube, TASKS, task, ANNOTATION_REQUEST_CHANGES, "ChangesRequested", message, extra)
    print(f"changes requested for task {args.task} of sprint {args.sprint} ({len(comments)} comment(s))")
    return 0
