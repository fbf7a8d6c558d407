"""Exact token accounting: every agent CLI's and model API's usage report -> one `TokenUsage`.

Pure: text in, records out. `parse(text, fmt)` reads a whole transcript, `LiveUsage` follows one
as it is written, `charge` turns cumulative session totals into spend, and `budget_verdict`,
`efficiency` and `aggregate` are the decisions the operator and the board make from them.
The formats and their traps are described in shared/token-usage.md.
"""

from __future__ import annotations

from .budget import BudgetVerdict, SprintUsage, aggregate, budget_verdict, charge, efficiency, task_limit
from .detect import detect_format
from .formats import FORMATS, USAGE_PARSERS, check_format
from .live import LiveUsage
from .record import UNKNOWN, ZERO, ModelUsage, TokenUsage, dumps, sum_usages


def parse(text: str, fmt: str = "auto") -> TokenUsage:
    """The usage a transcript reports, in format `fmt` (or detected with "auto").

    Raises errors.UsageParseError with a one-line message for an empty or malformed transcript.
    """
    check_format(fmt)
    return USAGE_PARSERS[detect_format(text) if fmt == "auto" else fmt](text)


__all__ = [
    "FORMATS",
    "UNKNOWN",
    "USAGE_PARSERS",
    "ZERO",
    "BudgetVerdict",
    "LiveUsage",
    "ModelUsage",
    "SprintUsage",
    "TokenUsage",
    "aggregate",
    "budget_verdict",
    "charge",
    "check_format",
    "detect_format",
    "dumps",
    "efficiency",
    "parse",
    "sum_usages",
    "task_limit",
]
