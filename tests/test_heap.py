"""heap.py: glibc malloc tuned (two arenas, a fixed mmap threshold) and trimmed, in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True, text=True
    ).stdout


def test_a_tuned_heap_maps_large_blocks_and_trimming_hands_freed_arena_pages_back() -> None:
    out = run(
        """
        import ctypes, threading
        from sprint_orchestrator import heap

        def anon_kb():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

        print(heap.tune())
        # Many small blocks freed out of order (not from the top of the heap): only a trim returns them.
        blocks = [ctypes.create_string_buffer(1000) for _ in range(100_000)]
        keep = blocks[-1]
        del blocks
        before = anon_kb()
        print(heap.trim())
        print(before - anon_kb())
        """
    )
    tuned, trimmed, freed_kb = out.split()
    assert tuned == "True"
    assert trimmed == "True"
    assert int(freed_kb) > 20_000  # ~100 MB of 1000-byte blocks were freed; most of it goes back
