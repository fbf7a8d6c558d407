"""PURE: how a request that arrived on a task socket maps to an upstream model API, and back.

The in-container forwarder relays raw bytes, so the agent CLI's request reaches the proxy as it was sent.
The first path segment names the provider (the agent is pointed at `http://127.0.0.1:PORT/anthropic`,
`.../openai/v1` or `.../gemini`); the rest is the provider's own path. Example:

    POST /anthropic/v1/messages?beta=true  ->  Route("anthropic", "{upstream}/v1/messages?beta=true",
                                                     metered=True)

Each provider forwards an allowlist: its metered endpoints (POST), token counting and the model list;
batches, files, fine-tuning and admin endpoints have no route, and neither has a path with encoded
bytes, empty or dot segments. The Gemini route forwards only the three model calls an agent needs, each POST:
`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and `:countTokens`
(also under /v1 and /v1alpha). Anything else has no route; the only query parameter relayed is the
stream's `alt=sse` (a `key` parameter, the API's other way to pass a key, is dropped).

Headers are rewritten here too: the placeholder key the agent holds is dropped and the real key is set,
so the secret exists only in the proxy's memory and the outgoing request.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

PROVIDERS = ("anthropic", "openai", "gemini")
DEFAULT_UPSTREAMS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com",
    "gemini": "https://generativelanguage.googleapis.com",
}

# provider -> path (without query) -> (usage format for JSON bodies, usage format for SSE bodies)
METERED_PATHS: dict[str, dict[str, tuple[str, str]]] = {
    "anthropic": {"/v1/messages": ("anthropic-json", "anthropic-sse")},
    "openai": {
        "/v1/chat/completions": ("openai-chat-json", "openai-chat-sse"),
        "/v1/responses": ("openai-responses-json", "openai-responses-sse"),
    },
}

_GEMINI_PATH = re.compile(
    r"/(?:v1|v1beta|v1alpha)/models/[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
    r":(generateContent|streamGenerateContent|countTokens)"
)
# Gemini method -> (the only query it may carry, its usage formats)
_GEMINI_METHODS: dict[str, tuple[list[tuple[str, str]], tuple[str | None, str | None]]] = {
    "generateContent": ([], ("gemini-api-json", "gemini-api-sse")),
    "streamGenerateContent": ([("alt", "sse")], ("gemini-api-json", "gemini-api-sse")),
    "countTokens": ([], (None, None)),
}
GEMINI_ROUTES = (
    "POST /gemini/v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse, :countTokens"
)

# Never forwarded in either direction: hop-by-hop headers (RFC 9110 §7.6.1), framing the proxy redoes,
# and every header that can carry a credential.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
    }
)
_CREDENTIALS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie"})

# Busy answers worth a retry: rate limited, or overloaded (Anthropic's 529, Google's 503 UNAVAILABLE).
RETRYABLE_STATUSES: dict[str, frozenset[int]] = {
    "anthropic": frozenset({429, 529}),
    "openai": frozenset({429, 529}),
    "gemini": frozenset({429, 503}),
}


@dataclass(frozen=True)
class Route:
    """Where one request goes and how its response is metered."""

    provider: str
    url: str
    json_format: str | None  # None: not a metered endpoint (model lists, token counting)
    sse_format: str | None

    @property
    def metered(self) -> bool:
        return self.json_format is not None

    def usage_format(self, content_type: str) -> str | None:
        """The `usage.parse` format for a response with this content type."""
        if content_type.split(";", 1)[0].strip().lower() == "text/event-stream":
            return self.sse_format
        return self.json_format


# provider -> the (method, path) pairs it forwards besides its metered POSTs: token counting and the
# model list the CLIs ask for. Nothing else (batches, files, fine-tuning, admin, organization) passes.
UNMETERED_ROUTES: dict[str, frozenset[tuple[str, str]]] = {
    "anthropic": frozenset({("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")}),
    "openai": frozenset({("POST", "/v1/responses/input_tokens"), ("GET", "/v1/models")}),
}
_MODEL_INFO = re.compile(r"/v1/models/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Path tricks a gateway might normalize differently than we compare: encoded bytes, empty or dot
# segments, backslashes, control characters.
_TRICKY_PATH = re.compile(r"%|//|/\.{1,2}(?:/|$)|\\|[\x00-\x20\x7f]")


def resolve(path: str, query: str, upstreams: Mapping[str, str], method: str = "POST") -> Route | None:
    """Map `METHOD /provider/rest?query` to its upstream; None when the provider is unknown or not
    configured, or the request is not one the provider's route forwards (an allowlist, per provider)."""
    provider, _, rest = path.lstrip("/").partition("/")
    base = upstreams.get(provider)
    if provider not in PROVIDERS or base is None or _TRICKY_PATH.search(path):
        return None
    rest = "/" + rest
    if provider == "gemini":
        return _gemini(method, rest, query, base)
    verb = method.upper()
    formats = METERED_PATHS[provider].get(rest)
    allowed = (
        (verb == "POST" and formats is not None)
        or (verb, rest) in UNMETERED_ROUTES[provider]
        or (verb == "GET" and _MODEL_INFO.fullmatch(rest) is not None)
    )
    if not allowed:
        return None
    url = base.rstrip("/") + rest + (f"?{query}" if query else "")
    json_format, sse_format = formats or (None, None)
    return Route(provider, url, json_format, sse_format)


def _gemini(method: str, rest: str, query: str, base: str) -> Route | None:
    match = _GEMINI_PATH.fullmatch(rest)
    if method.upper() != "POST" or match is None:
        return None
    allowed, (json_format, sse_format) = _GEMINI_METHODS[match.group(1)]
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"]
    if params != allowed:
        return None
    url = base.rstrip("/") + rest + "".join(f"?{k}={v}" for k, v in params)
    return Route("gemini", url, json_format, sse_format)


def upstream_headers(incoming: Iterable[tuple[str, str]], provider: str, secret: str) -> dict[str, str]:
    """The agent's headers minus hop-by-hop and credentials, plus the provider's real credential."""
    headers = {k: v for k, v in incoming if k.lower() not in _HOP_BY_HOP | _CREDENTIALS}
    headers["Accept-Encoding"] = "identity"  # the proxy reads every byte it meters
    if provider == "anthropic":
        headers["x-api-key"] = secret
    elif provider == "gemini":
        headers["x-goog-api-key"] = secret
    else:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def downstream_headers(upstream: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The upstream response's headers that may be relayed to the agent."""
    return {k: v for k, v in upstream if k.lower() not in _HOP_BY_HOP | _CREDENTIALS}


def is_retryable(provider: str, status: int) -> bool:
    return status in RETRYABLE_STATUSES.get(provider, frozenset())


def retry_delay(
    status: int, headers: Mapping[str, str], attempt: int, *, base: float = 0.5, cap: float = 60.0
) -> float:
    """Seconds to wait before retrying a rate-limited (429) or overloaded (529, 503) response.

    The provider's `retry-after-ms` / `retry-after` wins when present (capped); otherwise exponential
    backoff with jitter: attempt 0 -> 0.5 s .. 0.75 s, attempt 1 -> 1 s .. 1.5 s, and so on.
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _header(headers, name)
        if value is not None:
            try:
                return min(max(float(value) * scale, 0.0), cap)
            except ValueError:
                continue  # an HTTP-date: fall back to backoff rather than parse clocks
    delay: float = base * (2**attempt)
    return min(delay + random.uniform(0, delay / 2), cap)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
