"""Word counting."""


def count_words(text: str) -> int:
    """The number of whitespace-separated words in `text`."""
    return len(text.split())
