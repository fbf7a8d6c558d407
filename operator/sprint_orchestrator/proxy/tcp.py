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

import hashlib
import secrets
import threading
from collections.abc import Mapping, Sequence
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
    """credential digest -> attempt, thread-safe; a credential maps to one attempt until revoked."""

    def __init__(self) -> None:
        self._keys: dict[str, TaskKey] = {}
        self._by_key: dict[TaskKey, str] = {}
        self._lock = threading.Lock()

    def grant(self, key: TaskKey) -> str:
        """A fresh credential for the attempt (a previous one of the same attempt is revoked)."""
        credential = mint()
        with self._lock:
            old = self._by_key.pop(key, None)
            if old is not None:
                self._keys.pop(old, None)
            self._keys[digest(credential)] = key
            self._by_key[key] = digest(credential)
        return credential

    def revoke(self, key: TaskKey) -> bool:
        with self._lock:
            held = self._by_key.pop(key, None)
            if held is not None:
                self._keys.pop(held, None)
        return held is not None

    def holds(self, key: TaskKey) -> bool:
        with self._lock:
            return key in self._by_key

    def attempt_of(self, credential: str | None) -> TaskKey | None:
        if not credential or not credential.startswith(CREDENTIAL_PREFIX):
            return None
        with self._lock:  # a lookup by SHA-256 of a random secret: nothing to learn from its timing
            return self._keys.get(digest(credential))


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
