"""Model access for task Pods: the proxy on TCP, each attempt authenticated by a credential of its own.

Pods share no disk with the operator, so the per-attempt Unix socket of the Podman runtime cannot reach
them. Instead the proxy also listens on TCP, on the address the Pods already reach for their workspace
(`containers.transfer_address`), and each attempt gets a credential:

    agent CLI (in the Pod) --HTTP, x-api-key: <credential>--> proxy TCP listener (in the operator;
    credential -> TaskKey, budget) --HTTPS, the real key--> the provider

- Minted when the attempt opens (`mint`: 32 random bytes from `secrets`), known to the proxy only as
  its SHA-256 (`CredentialBook`), so no proxy memory dump or log holds a usable copy; revoked when the
  attempt closes. A request with an unknown or revoked credential is refused in the provider's error
  format (401 invalid key), before routing, metering or any upstream traffic.
- The agent CLI sends it where it sends an API key (`presented`): `x-api-key`, `Authorization: Bearer`,
  `x-goog-api-key` or Gemini's `?key=`. The proxy drops every one of those headers and puts the real
  key in (`routing.upstream_headers`): the real key never leaves the operator's process.
- It reaches the Pod through a per-attempt Secret referenced by `secretKeyRef` (runtime/podnet.py), not a
  literal env value: a Secret's value is not part of the Pod spec, so `kubectl get pod -o yaml`, the
  Pod's Events and the operator's own Pod manifests never show it. The credential is worth little
  anyway (one attempt's budget, for as long as that attempt runs), but it is still a secret.

`direct_launch` turns a team's forwarder launch (built for the Podman socket) into the Pod's: the agent
CLI itself, pointed at the proxy's TCP address, its placeholder keys replaced by the credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl

from .sockets import CONTAINER_PORT, TaskKey

CREDENTIAL_PREFIX = "sk-so-attempt-"
# The env variables an agent CLI reads its key from; the credential is given under each.
KEY_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY")
_FORWARDER_ENV = ("SPRINT_LLM_PORT", "SPRINT_LLM_SOCKET")


def mint() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


class CredentialBook:
    """credential digest -> attempt, thread-safe; a credential maps to one attempt until revoked.

    With a `store` directory (the operator's private state), an attempt's credential survives a restart
    of the operator, so a task Pod it adopts keeps working: the credential is HMAC-SHA256(a key made
    once and kept in the store, the attempt + a random nonce), and the store keeps only the nonce per
    attempt (`resume` derives the same credential again). The store is the operator's private state
    (0700, like the transfer grants) and never holds a credential; deleting an attempt's nonce when the
    attempt closes revokes its credential for good.
    """

    def __init__(self, store: Path | None = None) -> None:
        self._keys: dict[str, TaskKey] = {}
        self._by_key: dict[TaskKey, str] = {}
        self._lock = threading.Lock()
        self._store = store

    def grant(self, key: TaskKey) -> str:
        """A fresh credential for the attempt (a previous one of the same attempt is revoked)."""
        nonce = secrets.token_bytes(16)
        if self._store is None:
            credential = mint()
        else:
            _write_private(self._nonce_path(key), nonce)
            credential = self._derive(key, nonce)
        self._hold(key, credential)
        return credential

    def resume(self, key: TaskKey) -> str | None:
        """The credential the attempt was granted before a restart, held again; None if it has none."""
        if self._store is None:
            return None
        nonce = _read_private(self._nonce_path(key), 16)
        if nonce is None:
            return None
        credential = self._derive(key, nonce)
        self._hold(key, credential)
        return credential

    def revoke(self, key: TaskKey, forget: bool = True) -> bool:
        """Refuse the attempt's credential from now on; `forget`: also drop what lets a restarted
        operator hold it again (False while the operator stops and the Pod runs on)."""
        with self._lock:
            held = self._by_key.pop(key, None)
            if held is not None:
                self._keys.pop(held, None)
        if forget and self._store is not None:
            self._nonce_path(key).unlink(missing_ok=True)
        return held is not None

    def _hold(self, key: TaskKey, credential: str) -> None:
        with self._lock:
            old = self._by_key.pop(key, None)
            if old is not None:
                self._keys.pop(old, None)
            self._keys[digest(credential)] = key
            self._by_key[key] = digest(credential)

    def _nonce_path(self, key: TaskKey) -> Path:
        assert self._store is not None
        name = hashlib.sha256(f"{key.sprint_id}\0{key.task_id}\0{key.attempt}".encode()).hexdigest()
        return self._store / "attempts" / name

    def _derive(self, key: TaskKey, nonce: bytes) -> str:
        assert self._store is not None
        path = self._store / "key"
        secret = _read_private(path, 32)
        if secret is None:
            _write_private(path, secrets.token_bytes(32), exclusive=True)
            secret = _read_private(path, 32)
        if secret is None:
            raise OSError(f"cannot read the credential key {path}")
        message = f"{key.sprint_id}\0{key.task_id}\0{key.attempt}\0".encode() + nonce
        mac = hmac.new(secret, message, hashlib.sha256).digest()
        return CREDENTIAL_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def holds(self, key: TaskKey) -> bool:
        with self._lock:
            return key in self._by_key

    def attempt_of(self, credential: str | None) -> TaskKey | None:
        if not credential or not credential.startswith(CREDENTIAL_PREFIX):
            return None
        with self._lock:  # a lookup by SHA-256 of a random secret: nothing to learn from its timing
            return self._keys.get(digest(credential))


def _write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """`data` into a 0600 file in a 0700 directory, atomically (never through a symlink)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if exclusive:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return  # another writer made it first: read theirs
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _read_private(path: Path, size: int) -> bytes | None:
    """The file's bytes when it is a regular file of exactly `size` bytes, not a symlink; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        data = handle.read(size + 1)
    return data if len(data) == size else None


def presented(headers: Mapping[str, str], query: str) -> str | None:
    """The credential a request carries where its CLI sends an API key; None when it carries none."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-api-key", "x-goog-api-key"):
        if lowered.get(name):
            return lowered[name].strip()
    auth = lowered.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "key" and value:
            return value
    return None


def direct_launch(
    command: Sequence[str], environment: Mapping[str, str], base_url: str, port: int = CONTAINER_PORT
) -> tuple[list[str], dict[str, str]]:
    """The Pod's command and environment from a forwarder launch: no forwarder (nothing to relay to),
    every `http://127.0.0.1:PORT` URL (env and arguments, e.g. Codex's provider option) on `base_url`,
    no placeholder key (the runtime adds the credential from the attempt's Secret)."""
    local = f"http://127.0.0.1:{port}"
    argv = list(command)
    if "--" in argv and any(a.endswith("sprint-llm-forwarder") for a in argv[: argv.index("--")]):
        argv = argv[argv.index("--") + 1 :]
    argv = [a.replace(local, base_url) for a in argv]
    env = {
        k: v.replace(local, base_url)
        for k, v in environment.items()
        if k not in KEY_VARIABLES and k not in _FORWARDER_ENV
    }
    return argv, env


def key_secrets(credential: str) -> dict[str, str]:
    """The credential under every key variable an agent CLI reads."""
    return dict.fromkeys(KEY_VARIABLES, credential)
