"""Container logs: conmon streams them to a size-capped file in the k8s-file format; we decode it.

Each line of a k8s-file log is `<RFC 3339 time> <stdout|stderr> <F|P> <text>`: `F` ends a line, `P` is
a partial line continued by the next record of the same stream:

    2026-11-25T15:45:24.61+00:00 stdout P part
    2026-11-25T15:45:24.61+00:00 stdout F ial        -> "partial\\n" on stdout

When the file passes its size cap, conmon truncates it and carries on, so the file keeps the tail of
the output: where an agent prints its final usage record, last.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

STREAMS = ("stdout", "stderr")


def decode(lines: Iterable[str], streams: tuple[str, ...] = STREAMS) -> str:
    """The text the container wrote on `streams`: whole lines in the order they were completed, each
    stream's partial records joined (stdout and stderr records may interleave)."""
    out: list[str] = []
    pending: dict[str, list[str]] = {name: [] for name in STREAMS}
    for line in lines:
        parts = line.rstrip("\n").split(" ", 3)
        if len(parts) < 3 or parts[1] not in STREAMS:
            continue  # a line cut by truncation
        text = parts[3] if len(parts) == 4 else ""
        pending[parts[1]].append(text)
        if parts[2] != "P":
            whole = "".join(pending[parts[1]]) + "\n"
            pending[parts[1]].clear()
            if parts[1] in streams:
                out.append(whole)
    out += ["".join(pending[name]) for name in streams if pending[name]]
    return "".join(out)


def read_log(path: Path, streams: tuple[str, ...] = STREAMS) -> str:
    """Decode a k8s-file log; a missing file is an empty log."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return decode(handle, streams)
    except FileNotFoundError:
        return ""


def tail(text: str, max_chars: int = 4000) -> str:
    """The end of a log, cut at a line boundary when one is near."""
    if len(text) <= max_chars:
        return text
    cut = text[-max_chars:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < 200 else cut


def write_text_logs(raw: Path, combined: Path, stdout: Path) -> None:
    """Write the decoded combined output and the stdout-only output (what usage parsers read)."""
    lines = raw.read_text(encoding="utf-8", errors="replace").splitlines() if raw.exists() else []
    combined.write_text(decode(lines), encoding="utf-8")
    stdout.write_text(decode(lines, ("stdout",)), encoding="utf-8")
