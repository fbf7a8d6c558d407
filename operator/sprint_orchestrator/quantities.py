"""Memory sizes and CPU counts in the notations users already write, normalized once at the edge.

Memory (`resourceLimits.memory`) is a byte count (an integer) or a string in either notation:

    Kubernetes binary   Ki Mi Gi Ti Pi Ei        512Mi, 2Gi, 1.5Gi       (powers of 1024)
    Podman/Docker       b k m g t p, with an     512m, 1g, 2GB, 512mb    (powers of 1024, any case,
                        optional i and/or b                                as `podman run --memory`)
    plain number        bytes                    536870912

The rule for the overlap: a suffix is accepted when both notations agree on it (Ki, Mi, ...) or when
only one of them gives it a meaning anyone would use ("512m" is 0.512 bytes to Kubernetes: Podman's
512 MiB is meant; g, t, kb, MB... are not Kubernetes suffixes at all). The single letters k, M, G, T,
P, E are refused as ambiguous: Kubernetes reads them as powers of 1000, Podman/Docker as powers of
1024 ("1G" is 1000000000 or 1073741824 bytes), and the error shows both unambiguous spellings.
Sizes below 4 MiB are refused (a bare 512 is 512 bytes: "512Mi" or "512m" was meant).

CPUs (`resourceLimits.cpus`) are a number (1.5, as `podman run --cpus`), the same as a string ("1.5"),
or Kubernetes millicores ("500m" = 0.5), from 0.01 (10m, the smallest CFS quota) to 256.

Each check exists here in Python and as the CRD's pattern/CEL rules below (RE2; tests/test_model.py
checks that they agree and tests/test_limits.py that the apiserver enforces them).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

MEMORY_MIN = 4 << 20
MEMORY_MAX = 1 << 50  # 1 PiB: anything above is a typo
NANO = 10**9
CPUS_MIN_NANO = 10_000_000  # 0.01 CPU = 10m
CPUS_MAX = 256

MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?([KkMmGgTtPp][iI]?[bB]?|[bB]|Ei|E)?$"
AMBIGUOUS_PATTERN = r"^[0-9]+(\.[0-9]+)?[kMGTPE]$"
# a positive decimal (some digit other than 0), optionally in millicores
CPUS_PATTERN = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)m?$"
MEMORY_FORMS = "a Kubernetes quantity (512Mi, 2Gi) or a Podman/Docker size (512m, 2g)"
CPUS_FORMS = "a number of CPUs (1.5, as Podman/Docker) or Kubernetes millicores ('500m')"

_POWER = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}

_CEL_UNITS = ", ".join(f"'{k}': {float(1024**v)}" for k, v in _POWER.items())
# bytes of a string that matches MEMORY_PATTERN: its number times 1024 ** (the first letter's power)
_CEL_SIZE = f"double(self.find(r'^[0-9.]+')) * {{{_CEL_UNITS}}}[self.find('[A-Za-z]').lowerAscii()]"

# The same rules for the apiserver. `memory` is int-or-string; `cpus` takes a JSON number or a
# string, which no typed schema can say, so it preserves its value and carries value validations only
# (a pattern applies to strings, minimum/maximum to numbers; CEL cannot see an untyped value, so the
# apiserver lets a boolean or an object through, and the limits of a string, to the operator's check).
MEMORY_RULES: list[Any] = [
    {
        "rule": f"type(self) != string || !self.matches(r'{AMBIGUOUS_PATTERN}')",
        "message": (
            "is ambiguous: Kubernetes reads k, M, G, T, P, E as powers of 1000, Podman/Docker as powers "
            "of 1024; write 512Mi or 512m (both 512 MiB), or a number of bytes"
        ),
    },
    {
        "rule": f"type(self) != int || (self >= {MEMORY_MIN} && self <= {MEMORY_MAX})",
        "message": "a number of bytes must be at least 4194304 (4Mi); write 512Mi or 512m for 512 MiB",
    },
    {
        "rule": (
            f"type(self) != string || !self.matches(r'{MEMORY_PATTERN}') || "
            f"({_CEL_SIZE} >= {float(MEMORY_MIN)} && {_CEL_SIZE} <= {float(MEMORY_MAX)})"
        ),
        "message": "must be from 4Mi to 1Pi (512Mi or 512m is 512 MiB)",
    },
]
MEMORY_SCHEMA: JsonDict = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": MEMORY_PATTERN,
    "maxLength": 32,
    "x-kubernetes-validations": MEMORY_RULES,
    "description": (
        "Bytes, or a Kubernetes quantity (512Mi, 2Gi) or Podman/Docker size (512m, 2g); "
        "k, M, G, T, P, E alone are refused as ambiguous."
    ),
}
CPUS_SCHEMA: JsonDict = {
    "x-kubernetes-preserve-unknown-fields": True,
    "pattern": CPUS_PATTERN,
    "maxLength": 16,
    "minimum": 0,  # exclusive: a minimum of 0.01 let the integer 0 through the apiserver
    "exclusiveMinimum": True,
    "maximum": CPUS_MAX,
    "description": "CPUs: a number (1.5) or a string ('1.5', or Kubernetes millicores '500m').",
}


def _fail(value: Any, why: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", "{value} " + why, {"value": repr(value)})


def _split(text: str) -> tuple[Decimal, str]:
    match = re.fullmatch(MEMORY_PATTERN, text)
    if not match:
        raise ValueError(text)
    suffix = match.group(2) or ""
    return Decimal(text[: len(text) - len(suffix)]), suffix


def memory_bytes(value: Any) -> int:
    """Bytes of a memory size: 536870912, "512Mi", "512m", "0.5g" -> 536870912; raises PydanticCustomError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(value, f"is not a memory size: write {MEMORY_FORMS}")
    if isinstance(value, int):
        number, suffix = Decimal(value), ""
    else:
        try:
            number, suffix = _split(value)
        except (ValueError, InvalidOperation):
            raise _fail(value, f"is not a memory size: write {MEMORY_FORMS}") from None
    if isinstance(value, str) and re.fullmatch(AMBIGUOUS_PATTERN, value):
        raise _ambiguous(value, number, suffix)
    size = int(number * 1024 ** _power(suffix))
    if size < MEMORY_MIN:
        hint = f"; write {value}Mi or {value}m for {value} MiB" if suffix == "" else ""
        raise _fail(value, f"is {size} bytes, less than 4Mi, too little for a container{hint}")
    if size > MEMORY_MAX:
        raise _fail(value, "is more than 1Pi")
    return size


DISK_MIN = 16 << 20  # runtime/disks.py: mkfs.ext4 needs room for its own metadata


def disk_bytes(value: Any) -> int:
    """Bytes of a disk cap, written as a memory size (both notations): "2Gi", "2g", "64Mi" -> bytes."""
    size = memory_bytes(value)
    if size < DISK_MIN:
        raise _fail(value, f"is {size} bytes, less than 16Mi, too little for a container's filesystem")
    return size


def disk_bytes_or_none(value: Any) -> int:
    """A configured disk cap; 0 (or "0") means none."""
    return 0 if value in (0, "0") and not isinstance(value, bool) else disk_bytes(value)


def _power(suffix: str) -> int:
    return _POWER[suffix[:1].lower()] if suffix not in ("b", "B") else 0


_DOCKER_SPELLING = {"k": "kb", "M": "m", "G": "g", "T": "t", "P": "p"}


def _ambiguous(value: Any, number: Decimal, suffix: str) -> PydanticCustomError:
    power = _POWER[suffix.lower()]
    decimal, binary = int(number * 1000**power), int(number * 1024**power)
    k8s = f"{number}{suffix.upper()}i"
    docker = f" or {number}{_DOCKER_SPELLING[suffix]} (Podman/Docker)" if suffix in _DOCKER_SPELLING else ""
    return _fail(
        value,
        f"is ambiguous: Kubernetes reads it as {decimal} bytes, Podman/Docker as {binary}; write {k8s} "
        f"(Kubernetes){docker} for {binary} bytes, or {decimal} for exactly that many",
    )


def nano_cpus(value: Any) -> int:
    """Nano-CPUs of a CPU count: 1.5, "1.5", "1500m" -> 1500000000; raises PydanticCustomError."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(value, f"is not a CPU count: write {CPUS_FORMS}")
    try:
        if isinstance(value, str):
            if not re.fullmatch(CPUS_PATTERN, value):
                raise ValueError(value)
            milli = value.endswith("m")
            nano = int(Decimal(value[:-1]) * 10**6) if milli else int(Decimal(value) * NANO)
        else:
            nano = int(Decimal(str(value)) * NANO)
    except (ValueError, OverflowError, InvalidOperation):
        raise _fail(value, f"is not a CPU count: write {CPUS_FORMS}") from None
    if nano < CPUS_MIN_NANO:
        raise _fail(value, "is less than 0.01 CPU (10m), the smallest limit a container can have")
    if nano > CPUS_MAX * NANO:
        raise _fail(value, f"is more than {CPUS_MAX} CPUs")
    return nano


def format_bytes(size: int) -> str:
    """The shortest exact Kubernetes spelling: 536870912 -> "512Mi", 1500000000 -> "1500000000"."""
    for power, unit in ((5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        if size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return str(size)


def format_cpus(nano: int) -> str:
    """1500000000 -> "1.5", 2000000000 -> "2", 250000000 -> "250m"."""
    if nano < NANO and nano % 10**6 == 0:
        return f"{nano // 10**6}m"
    text = f"{Decimal(nano) / NANO:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
