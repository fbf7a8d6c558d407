"""A deliberately wrong helper: its test fails, so the task's quality gate sends it to review."""


def average_word_length(text: str) -> float:
    words = text.split()
    return sum(len(w) for w in words) / (len(words) + 1)  # the bug: off by one
