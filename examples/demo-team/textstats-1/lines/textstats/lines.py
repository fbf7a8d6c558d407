"""Line counting."""


def count_lines(text: str) -> int:
    """The number of lines in `text`; a final line without a newline still counts."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)
