"""`sprintctl crds`: write (or check) the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import crdgen

HELP = "Generate the Sprint and Task CRDs from the models (--check: exit 1 when crds/ is stale)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("crds"), help="CRD directory (default: ./crds)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when files differ")
    parser.add_argument("--print", dest="print_", action="store_true", help="print the CRDs as YAML")


def run(args: argparse.Namespace) -> int:
    if args.print_:
        sys.stdout.write("---\n".join(crdgen.rendered().values()))
        return 0
    if args.check:
        stale = crdgen.stale_files(args.dir)
        for name in stale:
            print(f"{args.dir / name}: differs from the models; run `sprintctl crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in crdgen.write(args.dir):
        print(f"wrote {path}")
    return 0
