"""Command line: `python3 -m textstats.cli [FILE]` prints the summary of FILE (or stdin) as JSON."""

import json
import sys
from typing import List, Optional

from textstats.report import summarize


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        with open(args[0], encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = sys.stdin.read()
    print(json.dumps(summarize(text), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
