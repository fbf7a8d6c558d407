"""`sprintctl usage` as a user runs it: exit codes, exact JSON, one-line errors, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from _usage import DATA

SPRINTCTL = str(Path(sys.executable).with_name("sprintctl"))


def sprintctl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [SPRINTCTL, "usage", *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def test_prints_one_json_object_with_exact_decimals() -> None:
    result = sprintctl("--format", "usage-jsonl", str(DATA / "team.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert '"cost_usd": 0.1717,' in result.stdout  # not 0.17170000000000002
    record = json.loads(result.stdout, parse_float=Decimal)
    assert record["total_tokens"] == 82300 and record["by_category"]["testing"]["total_tokens"] == 14600
    assert record["partial"] is False


def test_auto_is_the_default_format() -> None:
    result = sprintctl(str(DATA / "codex.jsonl"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reasoning_tokens"] == 64


def test_a_partial_run_is_still_success() -> None:
    result = sprintctl("--format", "anthropic-sse", str(DATA / "anthropic_cut.sse"))
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert record["partial"] is True and record["output_tokens"] is None and record["total_tokens"] is None


def test_reads_standard_input_with_a_dash() -> None:
    result = sprintctl("-", stdin=(DATA / "gemini.json").read_bytes())
    assert result.returncode == 0 and json.loads(result.stdout)["total_tokens"] == 27670


def test_huge_counts_are_printed_exactly(tmp_path: Path) -> None:
    big = 2**64 + 7
    path = tmp_path / "big.jsonl"
    path.write_text(f'{{"category":"review","input_tokens":{big},"output_tokens":1,'
                    '"cache_read_tokens":0,"cache_creation_tokens":0}\n')  # fmt: skip
    result = sprintctl(str(path))
    assert json.loads(result.stdout)["total_tokens"] == big + 1


def _bad(tmp_path: Path, name: str, content: bytes | None) -> str:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("name", "content", "fmt", "needle"),
    [
        ("empty.json", b"", "auto", "empty"),
        ("blank.jsonl", b"\n \n", "usage-jsonl", "empty"),
        ("broken.jsonl", b'{"category":"a"}\n{"category":"b"}\n{broken\n', "usage-jsonl", "line 3"),
        ("negative.jsonl", b'{"category":"a","output_tokens":-1}\n', "usage-jsonl", "output_tokens"),
        ("binary.bin", b"\xff\xfe\x00garbage", "auto", "not UTF-8"),
        ("unknown.json", b'{"what": "ever"}', "auto", "--format"),
        ("missing.json", None, "auto", "cannot read"),
        ("team.jsonl", b"{}", "yaml", "unknown format 'yaml'"),
    ],
)
def test_bad_input_exits_1_with_one_line_and_no_traceback(
    tmp_path: Path, name: str, content: bytes | None, fmt: str, needle: str
) -> None:
    path = _bad(tmp_path, name, content)
    result = sprintctl("--format", fmt, path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert needle in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_directory_is_bad_input(tmp_path: Path) -> None:
    result = sprintctl(str(tmp_path))
    assert result.returncode == 1 and str(tmp_path) in result.stderr and "Traceback" not in result.stderr
