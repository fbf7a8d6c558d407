"""The metering reverse proxy: one Unix socket per task attempt, relaying to the model APIs.

Each task attempt gets its own socket (`open_task_socket`), so every request is attributed to it by
the socket it arrived on. Task Pods, which share no disk, reach one TCP listener instead (`listen_tcp`)
and are attributed by their attempt's credential (`open_task_credential`, see tcp.py). A request is
refused in the provider's error format when the task's or the sprint's token budget is already spent;
otherwise the real key is put in, the request is sent upstream (429/529 retried with `retry-after` and
backoff; at most `ProxyLimits.concurrency` in flight per provider, shared fairly between task attempts
(`fair.py`); budgets checked again when a request gets its upstream slot) and the response is relayed
byte for byte as it arrives, while a copy is kept and parsed for usage when the response ends —
completely, or cut off on either side.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from ..settings import Settings
from ..usage import TokenUsage
from . import routing, sockets, tcp
from .fair import FairSlots
from .ledger import Ledger, ResponseMeter, TaskBudget
from .replies import Refusal, Reply, error_reply, provider_of
from .sockets import TaskKey

log = logging.getLogger("sprint_orchestrator.proxy")

UsageCallback = Callable[[str, str, int, TokenUsage], Awaitable[None] | None]


@dataclass(frozen=True)
class ProxyLimits:
    concurrency: int = 4  # upstream requests in flight per provider
    max_retries: int = 5  # of a 429/529 or a refused connection
    retry_cap_s: float = 60.0
    backoff_base_s: float = 0.5
    connect_timeout_s: float = 30.0
    read_timeout_s: float = 600.0  # between two chunks of a response


class MeteringProxy:
    """Meters and budgets the model traffic of task containers. Use: `async with MeteringProxy(...)`."""

    def __init__(
        self,
        upstreams: Mapping[str, str],
        keys: Mapping[str, str],
        limits: ProxyLimits | None = None,
        *,
        run_dir: Path,
        on_usage: UsageCallback | None = None,
    ) -> None:
        self._upstreams = {p: url for p, url in upstreams.items() if keys.get(p)}
        self._keys = dict(keys)
        self._limits = limits or ProxyLimits()
        self._run_dir = Path(run_dir)
        self._on_usage = on_usage
        self.ledger = Ledger()
        self._slots = {p: FairSlots(self._limits.concurrency) for p in routing.PROVIDERS}
        self._sites: dict[TaskKey, web.UnixSite] = {}
        self._by_socket: dict[str, TaskKey] = {}
        self.credentials = tcp.CredentialBook(self._run_dir / "credentials")
        self._tcp: web.SockSite | None = None
        self.tcp_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        upstreams: Mapping[str, str] | None = None,
        limits: ProxyLimits | None = None,
        on_usage: UsageCallback | None = None,
    ) -> MeteringProxy:
        """The proxy of a running operator: keys from `settings.api_keys`, sockets under its run dir."""
        return cls(
            upstreams or routing.DEFAULT_UPSTREAMS,
            settings.api_keys,
            limits,
            run_dir=settings.run_dir,
            on_usage=on_usage,
        )

    def __repr__(self) -> str:  # never shows the keys
        return f"MeteringProxy(providers={sorted(self._upstreams)}, run_dir={str(self._run_dir)!r})"

    async def __aenter__(self) -> MeteringProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._limits.connect_timeout_s, sock_read=self._limits.read_timeout_s
        )
        self._session = aiohttp.ClientSession(timeout=timeout, trust_env=False)

    async def stop(self) -> None:
        for key in list(self._sites):  # shutting down: containers may outlive us and be re-attached
            await self.close_task_socket(*key, keep_directory=True)
        if self._tcp is not None:
            await self._tcp.stop()
            self._tcp, self.tcp_url = None, None
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self._runner = self._session = None

    # -- the lifecycle contract -------------------------------------------------------------------

    async def open_task_socket(self, sprint_id: str, task_id: str, attempt: int, budget: TaskBudget) -> Path:
        """Listen on the attempt's own socket; bind-mount `path.parent` into its container."""
        key = TaskKey(sprint_id, task_id, attempt)
        if self._runner is None:
            raise RuntimeError("MeteringProxy.open_task_socket called before start()")
        if key in self._sites:
            return sockets.socket_path(self._run_dir, key)
        path = sockets.prepare(self._run_dir, key)
        site = web.UnixSite(self._runner, str(path))
        await site.start()
        sockets.open_up(path)
        self.ledger.open(key, budget)
        self._sites[key] = site
        self._by_socket[str(path)] = key
        return path

    async def close_task_socket(
        self, sprint_id: str, task_id: str, attempt: int, keep_directory: bool = False
    ) -> None:
        """Stop listening for the attempt (its usage stays readable); requests in flight finish.
        `keep_directory`: the attempt's container still runs and will get a socket again (restart)."""
        key = TaskKey(sprint_id, task_id, attempt)
        site = self._sites.pop(key, None)
        if site is None:
            return
        path = sockets.socket_path(self._run_dir, key)
        self._by_socket.pop(str(path), None)
        await site.stop()
        sockets.remove(path, keep_directory)

    async def listen_tcp(self, sock: socket.socket, advertised: str | None = None) -> str:
        """Serve task Pods on a bound TCP socket (once; the runtime binds it); return the base URL the
        Pods reach it on (`advertised`, e.g. behind a Service; else the socket's own address)."""
        if self._runner is None:
            raise RuntimeError("MeteringProxy.listen_tcp called before start()")
        if self._tcp is None:
            site = web.SockSite(self._runner, sock)
            await site.start()
            host, port = sock.getsockname()[:2]
            self._tcp, self.tcp_url = site, advertised or f"http://{host}:{port}"
        assert self.tcp_url is not None
        return self.tcp_url

    def open_task_credential(self, sprint_id: str, task_id: str, attempt: int, budget: TaskBudget) -> str:
        """A fresh credential for the attempt on the TCP listener; the only copy is returned."""
        key = TaskKey(sprint_id, task_id, attempt)
        sockets.check_key(key)
        self.ledger.open(key, budget)
        return self.credentials.grant(key)

    def resume_task_credential(
        self, sprint_id: str, task_id: str, attempt: int, budget: TaskBudget
    ) -> str | None:
        """The credential the attempt held before the operator restarted (its Pod still has it), held
        again with the attempt's budget; None when it was never granted or was revoked."""
        key = TaskKey(sprint_id, task_id, attempt)
        sockets.check_key(key)
        credential = self.credentials.resume(key)
        if credential is not None:
            self.ledger.open(key, budget)
        return credential

    def close_task_credential(self, sprint_id: str, task_id: str, attempt: int, keep: bool = False) -> None:
        """Revoke the attempt's credential: its next request is refused (its usage stays readable).
        `keep`: the operator is stopping while the Pod runs on: a restarted operator may resume it."""
        self.credentials.revoke(TaskKey(sprint_id, task_id, attempt), forget=not keep)

    def set_sprint_budget(
        self,
        sprint_id: str,
        tokens: int | None,
        used_before: int = 0,
        known: Mapping[TaskKey, int] | None = None,
    ) -> None:
        self.ledger.set_sprint_budget(sprint_id, tokens, used_before, known)

    def usage_for(self, sprint_id: str, task_id: str, attempt: int) -> TokenUsage:
        """The authoritative usage of the attempt: every metered response, summed."""
        return self.ledger.usage(TaskKey(sprint_id, task_id, attempt))

    def budget_exceeded(self, sprint_id: str, task_id: str, attempt: int) -> bool:
        return self.ledger.exceeded(TaskKey(sprint_id, task_id, attempt))

    # -- requests ---------------------------------------------------------------------------------

    def _attempt_of(self, request: web.Request) -> TaskKey | Refusal:
        """The attempt a request belongs to: by its Unix socket, or on TCP by its credential."""
        where = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(where, tuple):
            found = self.credentials.attempt_of(tcp.presented(request.headers, request.query_string))
            return found if found is not None else Refusal.INVALID_KEY
        return self._by_socket.get(str(where or "")) or Refusal.SOCKET_CLOSED

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = self._attempt_of(request)
        provider = provider_of(request.path)
        if key is Refusal.INVALID_KEY:
            log.warning("refused %s %s: unknown or revoked attempt credential", request.method, request.path)
            message = "invalid API key: this credential belongs to no running task attempt"
            return _send(error_reply(provider, Refusal.INVALID_KEY, message))
        if not isinstance(key, TaskKey):
            return _send(error_reply(provider, Refusal.SOCKET_CLOSED, "this task's model access is closed"))
        route = routing.resolve(
            request.raw_path.split("?", 1)[0], request.query_string, self._upstreams, request.method
        )
        if route is None:
            log.warning("refused %s %r for %s: no route", request.method, request.path[:300], key)
            return _send(error_reply(provider, Refusal.UNKNOWN_ROUTE, self._no_route(request)))
        if route.metered and (reason := self.ledger.refusal(key)) is not None:
            log.warning("refused %s %s for %s: %s", request.method, request.path, key, reason)
            return _send(error_reply(route.provider, Refusal.BUDGET, reason))
        body = await request.read()
        headers = routing.upstream_headers(
            request.headers.items(), route.provider, self._keys[route.provider]
        )
        started = time.perf_counter()
        response = await self._forward(request, key, route, body, headers)
        log.info(
            "%s %s %s -> %d in %.3fs", key, request.method, request.path, response.status,
            time.perf_counter() - started,
        )  # fmt: skip
        return response

    def _no_route(self, request: web.Request) -> str:
        if provider_of(request.path) == "gemini" and "gemini" in self._upstreams:
            return (
                f"{request.method} {request.path!r} is not a Gemini API request the proxy forwards; "
                f"it forwards only {routing.GEMINI_ROUTES}"
            )
        if provider_of(request.path) in self._upstreams:
            return (
                f"{request.method} {request.path!r} is not a model API request the proxy forwards (it "
                "forwards the messages/chat/responses endpoints, token counting and the model list)"
            )
        return (
            f"no model API is configured for path {request.path!r}; point the agent at "
            f"/{'/, /'.join(sorted(self._upstreams))}/ on the forwarder (e.g. ANTHROPIC_BASE_URL)"
        )

    async def _forward(
        self, request: web.Request, key: TaskKey, route: routing.Route, body: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        session = self._session
        if session is None:
            return _send(error_reply(route.provider, Refusal.SOCKET_CLOSED, "the proxy is shutting down"))
        for attempt in range(self._limits.max_retries + 1):
            last = attempt == self._limits.max_retries
            async with self._slots[route.provider].slot(key):
                # The budget decides when the request gets its slot, not when it arrived: others may
                # have spent the sprint's budget while it waited.
                if route.metered and (reason := self.ledger.refusal(key)) is not None:
                    log.warning("refused %s %s for %s at its upstream slot: %s", request.method, request.path,
                                key, reason)  # fmt: skip
                    return _send(error_reply(route.provider, Refusal.BUDGET, reason))
                try:
                    upstream = await session.request(request.method, route.url, headers=headers, data=body)
                except aiohttp.ClientConnectorError as exc:
                    if last:
                        message = f"the {route.provider} API could not be reached: {exc.os_error}"
                        return _send(error_reply(route.provider, Refusal.UPSTREAM_UNREACHABLE, message))
                    delay = self._backoff(0, {}, attempt)
                else:
                    if not routing.is_retryable(route.provider, upstream.status) or last:
                        async with upstream:
                            return await self._relay(request, key, route, upstream)
                    delay = self._backoff(upstream.status, upstream.headers, attempt)
                    upstream.release()
            log.info("%s upstream busy (attempt %d), retrying in %.2fs", key, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns")

    def _backoff(self, status: int, headers: Mapping[str, str], attempt: int) -> float:
        lim = self._limits
        return routing.retry_delay(status, headers, attempt, base=lim.backoff_base_s, cap=lim.retry_cap_s)

    async def _relay(
        self, request: web.Request, key: TaskKey, route: routing.Route, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        fmt = route.usage_format(upstream.content_type) if route.metered and upstream.status < 300 else None
        out = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=routing.downstream_headers(upstream.headers.items()),
        )
        await out.prepare(request)
        meter = ResponseMeter(fmt) if fmt is not None else None
        try:
            await _pump(request, key, upstream, out, meter)
        finally:
            if meter is not None:
                await self._meter(key, meter.result())
        return out

    async def _meter(self, key: TaskKey, usage: TokenUsage) -> None:
        total = self.ledger.record(key, usage)
        if self._on_usage is None:
            return
        try:
            result = self._on_usage(key.sprint_id, key.task_id, key.attempt, total)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_usage callback failed for %s", key)


async def _pump(
    request: web.Request,
    key: TaskKey,
    upstream: aiohttp.ClientResponse,
    out: web.StreamResponse,
    meter: ResponseMeter | None,
) -> None:
    """Relay the body chunk by chunk, metering each chunk before the agent gets it."""
    try:
        async for chunk in upstream.content.iter_any():
            if meter is not None:
                meter.feed(chunk)
            await out.write(chunk)
        await out.write_eof()
    except ConnectionResetError:  # first: aiohttp's reset error is also a ClientError
        log.warning("%s agent disconnected during the response", key)
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("%s upstream response cut off: %s", key, type(exc).__name__)
        if request.transport is not None:
            request.transport.close()  # the agent sees the cut too, not a clean end


def _send(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)
