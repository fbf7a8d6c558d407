"""Small text statistics."""

__version__ = "1.0.0"
