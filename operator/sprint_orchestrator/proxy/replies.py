"""PURE: the proxy's own error responses, each in the provider's documented error format.

An agent CLI shows a provider-format error cleanly ("API Error: 400 ...") and does not retry a 4xx that
is not a rate limit, which is what a spent budget needs. The shapes:

    Anthropic: {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}}
    OpenAI:    {"error": {"message": "...", "type": "insufficient_quota", "param": null,
                          "code": "insufficient_quota"}}

A spent budget mirrors how each provider reports exhausted credit: Anthropic answers 400
`invalid_request_error`; OpenAI answers 429 with code `insufficient_quota`, which clients do not retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum


class Refusal(Enum):
    BUDGET = "budget"
    UNKNOWN_ROUTE = "unknown_route"
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    SOCKET_CLOSED = "socket_closed"


# refusal -> provider -> (HTTP status, provider error type)
_TABLE: dict[Refusal, dict[str, tuple[int, str]]] = {
    Refusal.BUDGET: {"anthropic": (400, "invalid_request_error"), "openai": (429, "insufficient_quota")},
    Refusal.UNKNOWN_ROUTE: {"anthropic": (404, "not_found_error"), "openai": (404, "invalid_request_error")},
    Refusal.UPSTREAM_UNREACHABLE: {"anthropic": (502, "api_error"), "openai": (502, "server_error")},
    Refusal.SOCKET_CLOSED: {"anthropic": (403, "permission_error"), "openai": (403, "invalid_request_error")},
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def error_reply(provider: str, refusal: Refusal, message: str) -> Reply:
    """The error response for `refusal`, in `provider`'s format (Anthropic's for an unknown provider)."""
    family = "openai" if provider == "openai" else "anthropic"
    status, kind = _TABLE[refusal][family]
    if family == "anthropic":
        payload: dict[str, object] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        code = kind if refusal is Refusal.BUDGET else refusal.value
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, json.dumps(payload).encode())


def provider_of(path: str) -> str:
    """The provider a request path names, for choosing an error format before routing succeeds."""
    return path.lstrip("/").partition("/")[0]
