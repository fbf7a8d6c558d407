"""Character statistics."""

from collections import Counter
from typing import Optional


def count_chars(text: str) -> int:
    """The number of characters in `text`, whitespace included."""
    return len(text)


def most_common_char(text: str) -> Optional[str]:
    """The most frequent non-whitespace character (the first seen wins a tie); None if there is none."""
    counts = Counter(c for c in text if not c.isspace())
    if not counts:
        return None
    best = max(counts.values())
    return next(c for c in text if counts.get(c) == best)
