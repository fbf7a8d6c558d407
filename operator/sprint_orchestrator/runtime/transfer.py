"""The operator's workspace endpoint for task Pods: no disk is shared between the operator and the nodes.

A threaded HTTP server in the operator process, bound to an address the Pods reach (on the local cluster,
the host's node-bridge address). Each attempt registers a random one-time token (the only credential,
32 bytes from `secrets`); its URLs are

    GET  /t/<token>/workspace          the prepared workspace as a tar stream (the Pod's wrapper)
    GET  /t/<token>/mount/<i>          the i-th read-only mount's directory (the team's files)
    PUT  /t/<token>/result/<name>      a result tree (`workspace`, `artifacts`) after the task ended
    PUT  /t/<token>/result/<name>?exit=N   the same, the last one, with what the command exited with
    GET  /t/<token>/claim              a warm Pod's wait for its work (podpool.py): held up to CLAIM_POLL_S,
                                       then 204; once the operator assigns a run, 200 with its command

Each URL answers once; a second request, an unknown token or name is 404. The exit a wrapper reports is
kept (`Grant.reported_exit`) and announced (`on_settled`) once its upload is settled: a task whose
command exited 0 is over without waiting for the kubelet to say so (pods.py). It is the agent's own word,
as its exit code always is (its container runs its code); what it decides is only when the operator
stops waiting, never a gate, a limit or a verdict on the work. What went out whole is
recorded (`Grant.fetched`: the verdict on a Pod whose download broke off). An upload is spooled to a
temporary file (capped), then unpacked by `safetar.unpack` into a staging directory beside its target
and swapped in only if every member passed; the outcome (member count or the refused members) is kept
for the runtime to report.

Grants are held by the SHA-256 of their token (a request is matched by hashing what it presents) and,
with a `GrantStore`, kept on disk: a restarted operator re-registers them (`grants.py`) and adopts the
Pods still running. The endpoint may listen on one address and be advertised under another (a Service
in front of the operator's Pod: listen 0.0.0.0:8081, advertise the Service's address).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import ocilayer, safetar
from .grants import Grant, GrantStore

__all__ = ["Grant", "GrantStore", "TransferServer", "key_of", "open_endpoint", "split_address"]

_CHUNK = 1 << 16
CLAIM_POLL_S = 20.0  # how long a claim request is held before 204 (the wrapper asks again at once)
CLAIM_ACK_S = 5.0  # how long an assigned command may take to reach its Pod before the claim is lost


@dataclass
class Claim:
    """A warm Pod's claim on its grant: the command once assigned, and whether it went out."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    command: str | None = None
    waiting: int = 0  # claim requests held now: the Pod's wrapper is up and waits for its work
    last_poll: float = 0.0  # time.monotonic() of the last claim request
    handed: bool = False  # the command is being written to one request (never to a second)
    delivered: bool = False  # ... and it went out


def key_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def split_address(text: str) -> tuple[str, int | None]:
    """("10.0.0.5:8081") -> ("10.0.0.5", 8081); ("10.0.0.5") -> ("10.0.0.5", None)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host:
        return host, int(port)
    return text, None


class TransferServer:
    def __init__(
        self, host: str, port: int = 0, advertise: str | None = None, store: GrantStore | None = None
    ) -> None:
        self.grants: dict[str, Grant] = {}  # by key_of(token)
        self.lock = threading.Lock()
        self.store = store
        self.on_settled: Callable[[Grant], None] | None = None  # a result with a reported exit arrived
        self.claims: dict[str, Claim] = {}  # by key_of(token): the grants of warm Pods (podpool.py)
        self.claim_poll_s = CLAIM_POLL_S
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        advertised, advertised_port = split_address(advertise or host)
        self.advertise = f"{advertised}:{advertised_port or self.port}"
        for key, grant in (store.load() if store is not None else {}).items():
            if grant.pod:  # a one-shot's grant is of no use once its operator died
                self.grants[key] = grant
            else:
                store.remove(key)  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self.server.serve_forever, name="transfer", daemon=True)
        self.thread.start()

    def grant(
        self,
        workspace: Path,
        results: dict[str, Path],
        max_bytes: int = safetar.MAX_BYTES,
        mounts: list[Path] | None = None,
        pod: str = "",
        as_layers: frozenset[str] = frozenset(),
    ) -> str:
        """A one-time token for `workspace` out and `results` in; the names in `as_layers` come in as
        image layer files (ocilayer.py), the others as checked trees (safetar.py)."""
        token = secrets.token_urlsafe(32)
        grant = Grant(workspace, dict(results), max_bytes, list(mounts or []), pod, as_layers=as_layers)
        with self.lock:
            self.grants[key_of(token)] = grant
            self._save(key_of(token), grant)
        return token

    def pool_grant(self, placeholder: Path) -> str:
        """A token for a warm Pod: nothing to fetch until `assign` gives it a run (its workspace is
        `placeholder`, an empty directory, until then, and is answered only after the claim)."""
        token = self.grant(placeholder, {})
        with self.lock:
            self.claims[key_of(token)] = Claim()
        return token

    def waiting(self, token: str) -> bool:
        """Whether the warm Pod of `token` is up and waiting for its work now (a claim request held)."""
        claim = self.claims.get(key_of(token))
        if claim is None:
            return False
        with claim.cond:
            return claim.waiting > 0 and claim.command is None

    def last_claim(self, token: str) -> float | None:
        """time.monotonic() of the warm Pod's last claim request; None before its first."""
        claim = self.claims.get(key_of(token))
        if claim is None:
            return None
        with claim.cond:
            return claim.last_poll or None

    def assign(self, token: str, workspace: Path, command: str, ack_s: float = CLAIM_ACK_S) -> bool:
        """Give the warm Pod of `token` its run: `workspace` to fetch and the shell `command` to run.
        True once the command went out to the Pod; False when no waiting Pod took it within `ack_s`
        (it died meanwhile): the grant is then useless and the caller revokes it."""
        key = key_of(token)
        claim, grant = self.claims.get(key), self.grant_by_key(key)
        if claim is None or grant is None:
            return False
        with self.lock:
            grant.workspace = workspace
        with claim.cond:
            if claim.command is not None:
                return False  # assigned once only
            claim.command = command
            claim.cond.notify_all()
            return claim.cond.wait_for(lambda: claim.delivered, timeout=ack_s)

    def _claim(self, key: str) -> tuple[int, str]:
        """A warm Pod asks for its work: held until assigned (200, the command) or CLAIM_POLL_S (204);
        a claim already delivered is 404, as any URL asked twice."""
        claim = self.claims.get(key)
        if claim is None:
            return 404, "not found\n"
        with claim.cond:
            if claim.handed:
                return 404, "not found\n"
            claim.waiting += 1
            claim.last_poll = time.monotonic()
            try:
                claim.cond.wait_for(lambda: claim.command is not None, timeout=self.claim_poll_s)
            finally:
                claim.waiting -= 1
            if claim.command is None or claim.handed:
                return 204, ""
            claim.handed = True
            return 200, claim.command

    def _delivered(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is not None:
            with claim.cond:
                claim.delivered = True
                claim.cond.notify_all()

    def url(self, token: str) -> str:
        return f"http://{self.advertise}/t/{token}"

    def grant_of(self, token: str) -> Grant | None:
        return self.grant_by_key(key_of(token))

    def grant_by_key(self, key: str) -> Grant | None:
        with self.lock:
            return self.grants.get(key)

    def pods(self) -> dict[str, str]:
        """Pod name -> grant key of every grant made for a Pod (those restored from disk included)."""
        with self.lock:
            return {g.pod: key for key, g in self.grants.items() if g.pod}

    def revoke(self, token: str) -> None:
        self.revoke_key(key_of(token))

    def revoke_key(self, key: str) -> None:
        with self.lock:
            self.grants.pop(key, None)
            self.claims.pop(key, None)
            if self.store is not None:
                self.store.remove(key)

    def _save(self, key: str, grant: Grant) -> None:
        """Keep the grant's state on disk (the caller holds the lock)."""
        if self.store is not None and self.grants.get(key) is grant:
            self.store.save(key, grant)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- request handling (called from the server's threads) ---------------------------------------

    def _route(self, method: str, target: str) -> tuple[Grant, str, int | None] | None:
        """The grant, what is asked ("workspace", "mount/<i>" or a result name; each answered once) and
        the exit code an upload reports (`?exit=N`, 0-255)."""
        path, _, query = target.partition("?")
        reported = _exit_of(query) if method == "PUT" else None
        if query and method == "PUT" and reported is None:
            return None
        parts = path.split("/")
        if len(parts) < 4 or parts[1] != "t":
            return None
        key = key_of(parts[2])
        grant = self.grant_by_key(key)
        if grant is None:
            return None
        claim = self.claims.get(key)
        if claim is not None and not claim.delivered:
            return None  # a warm Pod's grant serves nothing before its claim
        with self.lock:
            if method == "GET" and parts[3:] == ["workspace"] and not grant.served:
                grant.served = True
                self._save(key, grant)
                return grant, "workspace", None
            if method == "GET" and len(parts) == 5 and parts[3] == "mount" and parts[4].isdigit():
                index = int(parts[4])
                if index < len(grant.mounts) and index not in grant.served_mounts:
                    grant.served_mounts.add(index)
                    self._save(key, grant)
                    return grant, f"mount/{index}", None
            if method == "PUT" and len(parts) == 5 and parts[3] == "result":
                name = parts[4]
                if name in grant.results and name not in grant.received:
                    grant.received[name] = "receiving"
                    return grant, name, reported
        return None

    def _sent(self, grant: Grant, what: str) -> None:
        """`what` went out whole (a Pod that dropped the connection midway raised before this)."""
        with self.lock:
            grant.sent.add(what)
            self._settle(grant)

    def _settle(self, grant: Grant) -> None:
        """A result's outcome is known: keep it on disk (the caller holds the lock)."""
        for key, held in self.grants.items():
            if held is grant:
                self._save(key, grant)

    def _receive(self, grant: Grant, name: str, body: _Body, reported: int | None = None) -> tuple[int, str]:
        try:
            return self._unpack(grant, name, body)
        finally:
            if reported is not None:
                with self.lock:
                    grant.reported_exit = reported
                    self._settle(grant)
                if self.on_settled is not None:
                    self.on_settled(grant)

    def _unpack(self, grant: Grant, name: str, body: _Body) -> tuple[int, str]:
        target = grant.results[name]
        as_layer = name in grant.as_layers
        (target.parent if as_layer else target).mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent)) / "tree"
        try:
            with tempfile.TemporaryFile(dir=target.parent) as spool:
                if not body.copy_to(spool, grant.max_bytes):
                    verdict = [f"the upload exceeds {grant.max_bytes} bytes"]
                    raise safetar.UnsafeTar(verdict)
                spool.seek(0)
                if as_layer:
                    layer = ocilayer.rewrite(spool, target, grant.max_bytes)
                    outcome = f"ok layer {layer.digest}"
                else:
                    outcome = f"ok {safetar.unpack(spool, staged, grant.max_bytes)} members"
                    safetar.replace_tree(target, staged)
        except safetar.UnsafeTar as exc:
            with self.lock:
                grant.received[name] = "refused"
                grant.refused[name] = exc.problems
                self._settle(grant)
            return 422, f"refused: {exc}\n"
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
        with self.lock:
            if as_layer:
                grant.layers[name] = layer
            grant.received[name] = outcome
            self._settle(grant)
        return 200, f"{outcome}\n"


def open_endpoint(host: str, port: int | None, advertise: str, store: GrantStore) -> TransferServer:
    """The endpoint on the configured port, else on the port of the last run (the running Pods' URLs
    name it: a restarted operator must answer there), else on any free one."""
    remembered = store.root / "port"
    if port is None and remembered.is_file():
        try:
            server = TransferServer(host, int(remembered.read_text()), advertise, store)
        except (OSError, ValueError):
            pass  # taken meanwhile: the Pods of the last run cannot upload (they end without a result)
        else:
            return server
    server = TransferServer(host, port or 0, advertise, store)
    if port is None:
        remembered.write_text(str(server.port))
    return server


def _exit_of(query: str) -> int | None:
    """`exit=N` with N in 0..255 (what a shell's $? can be), else None."""
    key, _, value = query.partition("=")
    if key != "exit" or not value.isdigit() or len(value) > 3 or int(value) > 255:
        return None
    return int(value)


class _Body:
    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler = handler

    def copy_to(self, sink: object, cap: int) -> bool:
        """Copy a Content-Length body into `sink`; False when it is larger than `cap`."""
        length = int(self.handler.headers.get("Content-Length") or -1)
        if length < 0 or length > cap:
            return False
        left = length
        while left > 0:
            chunk = self.handler.rfile.read(min(_CHUNK, left))
            if not chunk:
                return False
            sink.write(chunk)  # type: ignore[attr-defined]
            left -= len(chunk)
        return True


def _handler(owner: TransferServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return  # tokens are in the paths: never log them

        def do_GET(self) -> None:
            parts = self.path.split("/")
            if len(parts) == 4 and parts[1] == "t" and parts[3] == "claim":
                key = key_of(parts[2])
                code, text = owner._claim(key)
                self._answer(code, text)
                if code == 200:  # it went out (a dead Pod's connection raised in _answer)
                    owner._delivered(key)
                return
            route = owner._route("GET", self.path)
            if route is None:
                self._answer(404, "not found\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.end_headers()
            grant, what, _ = route
            source = grant.workspace if what == "workspace" else grant.mounts[int(what.split("/")[1])]
            safetar.pack(source, self.wfile)  # type: ignore[arg-type]
            owner._sent(grant, what)

        def do_PUT(self) -> None:
            route = owner._route("PUT", self.path)
            if route is None:
                self._answer(404, "not found\n")
                return
            self._answer(*owner._receive(route[0], route[1], _Body(self), route[2]))

        do_POST = do_PUT  # busybox wget can only POST

        def _answer(self, code: int, text: str) -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
