"""A summary of all statistics of a text."""

from textstats.chars import count_chars, most_common_char
from textstats.lines import count_lines
from textstats.words import count_words


def summarize(text: str) -> dict:
    return {
        "words": count_words(text),
        "lines": count_lines(text),
        "chars": count_chars(text),
        "most_common_char": most_common_char(text),
    }
