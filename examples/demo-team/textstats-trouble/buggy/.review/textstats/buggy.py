"""The helper as fixed after review: the mean length of the whitespace-separated words."""


def average_word_length(text: str) -> float:
    words = text.split()
    return sum(len(w) for w in words) / len(words) if words else 0.0
