#!/usr/bin/env python3
"""sprint-llm-forwarder: relay TCP 127.0.0.1:PORT to the task's bind-mounted Unix socket.

Runs inside the network-less task container with the standard library only. The agent CLI talks plain
HTTP to 127.0.0.1:PORT (ANTHROPIC_BASE_URL=http://127.0.0.1:PORT/anthropic); every byte is relayed
unchanged to the metering proxy on the other end of the socket, which holds the real API key.

    sprint-llm-forwarder [--port N] [--socket PATH]             serve in the foreground
    sprint-llm-forwarder [--port N] [--socket PATH] -- CMD ...  serve in a child, then exec CMD

With a command, the relay is forked off and becomes ready before CMD is exec'd, so CMD keeps the
forwarder's PID (and its signals and exit status) and its first request already finds the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import sys

DEFAULT_PORT = int(os.environ.get("SPRINT_LLM_PORT", "4180"))
DEFAULT_SOCKET = os.environ.get("SPRINT_LLM_SOCKET", "/run/sprint-llm/llm.sock")
CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _relay(socket_path: str, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        up_r, up_w = await asyncio.open_unix_connection(socket_path)
    except OSError as exc:
        print(f"sprint-llm-forwarder: cannot reach {socket_path}: {exc}", file=sys.stderr, flush=True)
        client_w.transport.abort()
        return
    try:
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        for w in (up_w, client_w):
            w.close()


async def serve(port: int, socket_path: str, ready_fd: int | None = None) -> None:
    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _relay(socket_path, r, w)

    server = await asyncio.start_server(on_client, "127.0.0.1", port)
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    async with server:
        await server.serve_forever()


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: the relay ends when the agent it serves ends (best effort; Linux only).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _fork_then_exec(port: int, socket_path: str, command: list[str]) -> None:
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        _die_with_parent()
        asyncio.run(serve(port, socket_path, write_fd))
        os._exit(0)
    os.close(write_fd)
    if os.read(read_fd, 1) != b"1":
        sys.exit(f"sprint-llm-forwarder: could not listen on 127.0.0.1:{port}")
    os.close(read_fd)
    os.execvp(command[0], command)


def main(argv: list[str]) -> None:
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="sprint-llm-forwarder", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--socket", default=DEFAULT_SOCKET)
    args = parser.parse_args(argv)
    if command:
        _fork_then_exec(args.port, args.socket, command)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.port, args.socket))


if __name__ == "__main__":
    main(sys.argv[1:])
