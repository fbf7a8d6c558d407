"""`sprintctl diff SPRINT TASK [--json]`: a task's change against its base, from the operator's clone.

Run it beside the operator (the same SPRINT_ORCHESTRATOR_STATE_DIR, or configuration with
git.working_trees_path): it reads the clone, never writes to it.
"""

from __future__ import annotations

import argparse
import json

from .. import settings as settings_module
from ..gitops import diff as gitdiff
from ..review import diff_target
from ._resources import add_target, connect, get_sprint, get_task

HELP = "print a task's change against its base (unified diff, or --json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=True)
    parser.add_argument("--json", action="store_true", help="files, counts, flags and hunks as JSON")
    parser.add_argument("--stat", action="store_true", help="one line per file: +/-, flags")


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    task, sprint = get_task(kube, args), get_sprint(kube, args)
    settings = settings_module.from_env()
    target = diff_target(task, sprint, settings.repository_url)
    diff = gitdiff.for_target(settings.trees_dir, target)
    if args.json:
        print(json.dumps(diff.to_json(), indent=2))
    elif args.stat:
        for f in diff.files:
            flags = [n for n, on in (("protected", f.protected), ("out-of-scope", f.out_of_scope),
                                     ("binary", f.binary), ("oversized", f.oversized)) if on]  # fmt: skip
            name = f.path if f.old_path == f.path else f"{f.old_path} -> {f.path}"
            marks = f"  [{', '.join(flags)}]" if flags else ""
            print(f"{f.status:9} +{f.additions:<5} -{f.deletions:<5} {name}{marks}")
        span = f"{diff.base[:12]}..{diff.head[:12]}"
        print(f"{len(diff.files)} file(s), +{diff.additions} -{diff.deletions} ({span})")
    else:
        print(diff.text(), end="")
    return 0
