"""Field checks shared by the resource models, and pydantic errors rendered as key-path lines.

Each rule exists twice, on purpose: as a Python check with a message a user can act on, and as a
pattern or CEL rule in the generated CRD (RE2 syntax: no look-arounds), so the apiserver rejects the
same inputs. `tests/test_model.py` checks that both agree. Memory sizes and CPU counts: quantities.py.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import JsonValue, ValidationError
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

# Safe as a git ref component and as a Kubernetes label value.
ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
ID_RULES: list[JsonValue] = [
    {"rule": "!self.contains('..')", "message": "must not contain '..' (not safe as a git ref component)"},
    {"rule": "!self.endsWith('.lock')", "message": "must not end with '.lock' (not safe as a git ref)"},
]
_NAME_CHAR = r"[^/\\\x00-\x1f\x7f]"
# A path segment that is neither "." nor "..".
_SEGMENT = rf"(?:[^./\\\x00-\x1f\x7f]{_NAME_CHAR}*|\.[^./\\\x00-\x1f\x7f]{_NAME_CHAR}*|\.\.{_NAME_CHAR}+)"
PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
DEPENDENCY_PATTERN = r"^((apt|pip):)?[A-Za-z0-9][A-Za-z0-9._+=<>!~,\[\]-]*$"
ENV_NAME_RULE: JsonDict = {
    "rule": "self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
    "message": "environment variable names must match [A-Za-z_][A-Za-z0-9_]*",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def invalid(template: str, value: str, **extra: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", template, {"value": repr(value), **extra})


def check_safe_id(value: str) -> str:
    if len(value) > 63:
        raise invalid("{value} is longer than 63 characters", value)
    if not re.fullmatch(ID_PATTERN, value) or ".." in value or value.endswith(".lock"):
        raise invalid(
            "{value} is not safe as a git ref component (letters, digits, '.', '_', '-'; "
            "starting and ending with a letter or digit; no '..'; not ending in '.lock')",
            value,
        )
    return value


def path_problem(value: str) -> str | None:
    """Why `value` is not a safe relative path, or None when it is one."""
    if not value:
        return "is empty"
    if _CONTROL.search(value):
        return "contains a control character"
    if "\\" in value:
        return "contains a backslash (use '/')"
    if value.startswith("/"):
        return "is absolute (must be relative to the repository root)"
    segments = value.split("/")
    if ".." in segments:
        return "contains '..'"
    if "" in segments or "." in segments:
        return "is not normalized (no empty or '.' segments, no trailing '/')"
    return None


def check_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise invalid("{value} " + problem, value)
    return value


def check_dependency(value: str) -> str:
    if not re.fullmatch(DEPENDENCY_PATTERN, value):
        raise invalid("{value} is not 'apt:NAME', 'pip:SPEC' or a package name (no spaces)", value)
    return value


def key_path(base: str, loc: tuple[int | str, ...]) -> str:
    """("tasks", 1, "id") under "spec" -> "spec.tasks[1].id"."""
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(base: str, error: Any) -> list[str]:
    where = key_path(base, tuple(error["loc"]))
    kind = error["type"]
    if kind == "consistency":
        prefix = f"{where}." if where else ""
        return [prefix + line for line in error["msg"].split("\n")]
    if kind == "missing":
        return [f"{where}: required field is missing"]
    if kind == "extra_forbidden":
        return [f"{where}: unknown field"]
    if kind == "invalid":
        return [f"{where}: {error['msg']}" if where else error["msg"]]
    if kind == "too_long" and error.get("ctx", {}).get("field_type") == "List":
        # the apiserver's words for maxItems, so every edge refuses a long list with the same line
        ctx = error["ctx"]
        return [f"{where}: Too many: {ctx['actual_length']}: must have at most {ctx['max_length']} items"]
    if kind == "value_error":
        return [f"{where}: {error['msg'].removeprefix('Value error, ')}"]
    return [f"{where}: {error['msg']} (got {_short(error.get('input'))})"]


def describe_errors(exc: ValidationError, base: str) -> list[str]:
    """One line per problem, each starting with the key path under `base`."""
    return [line for error in exc.errors() for line in describe_error(base, error)]
