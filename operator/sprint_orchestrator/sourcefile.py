"""Reading user files (sprint definitions, manifests, configuration) with errors that name file and line.

Every failure is an `InvalidInput` with one line: "FILE: cannot read: ..." or "FILE:LINE:COL: invalid
YAML: ..." — never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import InvalidInput


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _yaml_error(exc: yaml.YAMLError, source: str) -> InvalidInput:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return InvalidInput(f"{where}: invalid YAML: {problem}")


def parse_yaml_documents(text: str, source: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def load_yaml(path: Path) -> Any:
    """The one YAML document in `path` (None when the file is empty)."""
    docs = parse_yaml_documents(read_text(path), str(path))
    if len(docs) > 1:
        raise InvalidInput(f"{path}: expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def load_documents(path: Path) -> tuple[str, list[Any]]:
    """("json" | "yaml", documents) of a JSON or YAML file, told apart by extension, then content."""
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip()[:1] in ("{", "[")):
        return "json", [parse_json(text, str(path))]
    return "yaml", parse_yaml_documents(text, str(path))
