"""Added latency of the metering proxy path, against calling the upstream directly, in the same run.

Four processes, as in production: the Anthropic stand-in (the upstream), the MeteringProxy (the operator),
the forwarder (the container) and this client (the agent). Streamed `/v1/messages` requests alternate
between the direct path (client -> stand-in) and the proxied one (client -> forwarder on 127.0.0.1 ->
Unix socket -> proxy -> stand-in), each over a kept-alive connection as agent CLIs use them.
Time to first byte and total are taken per request; the last line is one JSON object of figures.

    .venv/bin/python bench/proxy.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests")]

from _standin_anthropic import AnthropicStandIn  # noqa: E402
from sprint_orchestrator.proxy import FORWARDER_SOURCE, MeteringProxy, TaskBudget  # noqa: E402

BODY = json.dumps({"model": "claude-bench", "max_tokens": 64, "stream": True, "messages": []}).encode()


async def serve_standin() -> None:
    standin = AnthropicStandIn()
    print(await standin.start(), flush=True)
    await asyncio.Event().wait()


async def serve_proxy(upstream: str, run_dir: str) -> None:
    proxy = MeteringProxy({"anthropic": upstream}, {"anthropic": "sk-bench"}, run_dir=Path(run_dir))
    await proxy.start()
    print(await proxy.open_task_socket("bench", "t1", 0, TaskBudget()), flush=True)
    await asyncio.Event().wait()


def spawn(*argv: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    start = time.perf_counter()
    headers = {"x-api-key": "placeholder", "content-type": "application/json"}
    async with session.post(url, data=BODY, headers=headers) as response:
        await response.content.readany()
        first = time.perf_counter()
        while await response.content.readany():
            pass
    return first - start, time.perf_counter() - start


async def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)


async def measure(direct: str, proxied: str, requests: int) -> dict[str, float | int]:
    samples: dict[str, list[tuple[float, float]]] = {"direct": [], "proxied": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm-up: connections, caches, the proxy's upstream pool
            await timed(session, direct)
            await timed(session, proxied)
        for i in range(requests):
            order = [("direct", direct), ("proxied", proxied)]
            for name, url in order if i % 2 else order[::-1]:
                samples[name].append(await timed(session, url))
    return figures(samples, requests)


def figures(samples: dict[str, list[tuple[float, float]]], requests: int) -> dict[str, float | int]:
    def med(name: str, index: int) -> float:
        return statistics.median(s[index] for s in samples[name])

    def p90(name: str, index: int) -> float:
        return statistics.quantiles([s[index] for s in samples[name]], n=10)[-1]

    return {
        "requests_each": requests,
        "direct_ttfb_s": round(med("direct", 0), 6),
        "proxied_ttfb_s": round(med("proxied", 0), 6),
        "direct_total_s": round(med("direct", 1), 6),
        "proxied_total_s": round(med("proxied", 1), 6),
        "overhead_ms": round((med("proxied", 0) - med("direct", 0)) * 1000, 3),
        "overhead_total_ms": round((med("proxied", 1) - med("direct", 1)) * 1000, 3),
        "overhead_ttfb_p90_ms": round((p90("proxied", 0) - p90("direct", 0)) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--serve", choices=["standin", "proxy"], help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "standin":
        asyncio.run(serve_standin())
    elif args.serve == "proxy":
        asyncio.run(serve_proxy(*args.args))
    else:
        print(json.dumps(run(args.requests)))


def run(requests: int) -> dict[str, float | int]:
    children: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as run_dir:
        try:
            standin, upstream = spawn(__file__, "--serve", "standin")
            children.append(standin)
            proxy, sock = spawn(__file__, "--serve", "proxy", upstream, run_dir)
            children.append(proxy)
            port = free_port()
            forwarder = subprocess.Popen(
                [sys.executable, str(FORWARDER_SOURCE), "--port", str(port), "--socket", sock]
            )
            children.append(forwarder)
            asyncio.run(wait_for_port(port))
            proxied = f"http://127.0.0.1:{port}/anthropic/v1/messages"
            print(f"direct {upstream}, proxied {proxied} (pid {os.getpid()})", file=sys.stderr)
            return asyncio.run(measure(f"{upstream}/v1/messages", proxied, requests))
        finally:
            for child in children:
                child.terminate()
                child.wait(10)


if __name__ == "__main__":
    main()
