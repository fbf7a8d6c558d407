"""Reading values out of decoded JSON: exact integers and decimals, errors that name the field.

JSON is decoded with floats as Decimals, so neither counts nor costs are ever rounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import UsageParseError
from .record import Count, Money


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def load_json(text: str, where: str) -> Any:
    """Decode JSON text; `where` names the place (e.g. "line 3") in the error message."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        raise UsageParseError(f"{where}: not valid JSON ({exc.msg} at {at})") from exc
    except (ValueError, RecursionError) as exc:
        raise UsageParseError(f"{where}: not valid JSON ({exc})") from exc


def try_json(text: str) -> Any:
    """The decoded value when `text` is valid JSON, else None."""
    try:
        return load_json(text, "")
    except UsageParseError:
        return None


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageParseError(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def sub_obj(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """parent[key] as an object, None when missing or null."""
    value = parent.get(key)
    return None if value is None else obj(value, f"{where}: {key}")


def count(parent: Mapping[str, Any] | None, key: str, where: str) -> Count:
    """A non-negative integer token count, None when missing or null."""
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, Decimal) and _integral(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageParseError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _integral(value: Decimal) -> bool:
    # 1.2e3 is 1200; the exponent bound keeps 1e999999999 from becoming a gigantic int
    return value.is_finite() and value.adjusted() < 80 and value == value.to_integral_value()


def money(parent: Mapping[str, Any] | None, key: str, where: str) -> Money:
    """A cost in USD as an exact Decimal, None when missing or null."""
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise UsageParseError(f"{where}: {key} must be a number, got {value!r}")
    return Decimal(value)


def text(parent: Mapping[str, Any], key: str) -> str | None:
    value = parent.get(key)
    return value if isinstance(value, str) and value else None


def uncached(total: Count, cached: Count, where: str, names: tuple[str, str]) -> Count:
    """The uncached part of an input count that includes its cached part (OpenAI, Codex, Gemini)."""
    if total is None or cached is None:
        return None
    if cached > total:
        raise UsageParseError(f"{where}: {names[1]} ({cached}) exceeds {names[0]} ({total})")
    return total - cached


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else f"{type(value).__name__} {value!r}"
