"""`sprintctl usage --format FORMAT FILE`: print a transcript's token usage as one JSON object."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageParseError
from ..usage import FORMATS, check_format, dumps, parse

HELP = "Print the token usage an agent transcript reports, normalized, as one JSON object."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # no `choices=`: an unknown format is bad input (exit 1, one line), like any other
    parser.add_argument(
        "--format", default="auto", metavar="FORMAT", help=f"one of: {', '.join(FORMATS)} (default: auto)"
    )
    parser.add_argument("file", metavar="FILE", help="the transcript ('-' reads standard input)")


def _read(name: str) -> str:
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise UsageParseError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageParseError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from exc


def run(args: argparse.Namespace) -> int:
    check_format(args.format)
    text = _read(args.file)
    try:
        usage = parse(text, args.format)
    except UsageParseError as exc:
        raise UsageParseError(f"{args.file}: {exc}") from exc
    print(dumps(usage.to_json()))
    return 0
