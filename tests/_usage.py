"""Helpers for the usage tests: the transcripts in tests/data/usage and expected records."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "usage"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def counts(
    i: int | None,
    cr: int | None,
    cc: int | None,
    o: int | None,
    r: int | None = None,
    cost: str | None = None,
) -> dict[str, Any]:
    """The expected JSON of one record's counts; the total is computed here by hand."""
    parts = (i, cr, cc, o)
    total = None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    return {
        "input_tokens": i,
        "cache_read_tokens": cr,
        "cache_creation_tokens": cc,
        "output_tokens": o,
        "reasoning_tokens": r,
        "total_tokens": total,
        "cost_usd": None if cost is None else Decimal(cost),
    }


def record(
    top: dict[str, Any],
    by_model: dict[str, dict[str, Any]] | None = None,
    partial: bool = False,
    by_category: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out = {**top, "by_model": by_model or {}}
    if by_category is not None:
        out["by_category"] = by_category
    out["partial"] = partial
    return out


UNKNOWN = counts(None, None, None, None)
