"""PURE: the proxy's own error responses, each in the provider's documented error format.

An agent CLI shows a provider-format error cleanly ("API Error: 400 ...") and does not retry a 4xx that
is not a rate limit, which is what a spent budget needs. The shapes:

    Anthropic: {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}}
    OpenAI:    {"error": {"message": "...", "type": "insufficient_quota", "param": null,
                          "code": "insufficient_quota"}}
    Google:    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", ...}]}}

A spent budget mirrors how each provider reports exhausted credit: Anthropic answers 400
`invalid_request_error`; OpenAI answers 429 with code `insufficient_quota`, which clients do not retry;
Google answers 429 RESOURCE_EXHAUSTED, and the message says the capacity is exhausted, which is what
the Gemini CLI (0.61) reads as a terminal quota error instead of retrying for minutes. An unknown or
revoked attempt credential (task Pods, tcp.py) is answered as each provider answers a wrong API key:
401 `authentication_error`, 401 `invalid_api_key`, 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
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
    INVALID_KEY = "invalid_api_key"


# refusal -> provider -> (HTTP status, provider error type; Google's: the google.rpc.Code name)
_TABLE: dict[Refusal, dict[str, tuple[int, str]]] = {
    Refusal.BUDGET: {
        "anthropic": (400, "invalid_request_error"),
        "openai": (429, "insufficient_quota"),
        "gemini": (429, "RESOURCE_EXHAUSTED"),
    },
    Refusal.UNKNOWN_ROUTE: {
        "anthropic": (404, "not_found_error"),
        "openai": (404, "invalid_request_error"),
        "gemini": (404, "NOT_FOUND"),
    },
    Refusal.UPSTREAM_UNREACHABLE: {
        "anthropic": (502, "api_error"),
        "openai": (502, "server_error"),
        "gemini": (503, "UNAVAILABLE"),
    },
    Refusal.SOCKET_CLOSED: {
        "anthropic": (403, "permission_error"),
        "openai": (403, "invalid_request_error"),
        "gemini": (403, "PERMISSION_DENIED"),
    },
    Refusal.INVALID_KEY: {  # how each provider answers a wrong API key
        "anthropic": (401, "authentication_error"),
        "openai": (401, "invalid_request_error"),
        "gemini": (400, "INVALID_ARGUMENT"),
    },
}
_GOOGLE_ERROR_DOMAIN = "sprintorchestrator.dev"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


def error_reply(provider: str, refusal: Refusal, message: str) -> Reply:
    """The error response for `refusal`, in `provider`'s format (Anthropic's for an unknown provider)."""
    family = provider if provider in ("openai", "gemini") else "anthropic"
    status, kind = _TABLE[refusal][family]
    payload: dict[str, object]
    if family == "gemini":
        payload = _google_error(status, kind, refusal, message)
    elif family == "anthropic":
        payload = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        code = kind if refusal is Refusal.BUDGET else refusal.value
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, json.dumps(payload).encode())


def _google_error(status: int, kind: str, refusal: Refusal, message: str) -> dict[str, object]:
    """google.rpc.Status as JSON, with an ErrorInfo naming the refusal (e.g. TOKEN_BUDGET_SPENT)."""
    if refusal is Refusal.BUDGET:
        message = f"{message}. You have exhausted your capacity: retrying will not help"
    reasons = {Refusal.BUDGET: "TOKEN_BUDGET_SPENT", Refusal.INVALID_KEY: "API_KEY_INVALID"}
    reason = reasons.get(refusal, refusal.value.upper())
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": _GOOGLE_ERROR_DOMAIN,
    }
    return {"error": {"code": status, "message": message, "status": kind, "details": [info]}}


def provider_of(path: str) -> str:
    """The provider a request path names, for choosing an error format before routing succeeds."""
    return path.lstrip("/").partition("/")[0]
