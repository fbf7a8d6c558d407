"""What the Kubernetes adapter's modules share (kube.py, kubepods.py): the error every call raises and
how an API exception becomes one."""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError  # the client's transport: no answer at all

from .errors import OrchestratorError


class KubeError(OrchestratorError):
    """A Kubernetes API call failed; the message names the call and the API's reason."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def unreachable(exc: BaseException) -> bool:
    """PURE: whether a call failed only because the API server is away or (re)starting: no answer at
    all (the client's connection errors), or its own "not yet" (503 before its paths are installed, 429
    while its storage initializes). A step that meets one is done again once the API server answers;
    it is no verdict on any Sprint or Task."""
    if isinstance(exc, KubeError):
        return exc.status in (429, 503)
    return isinstance(exc, TransportError)


def wrap(what: str, exc: ApiException) -> KubeError:
    reason = exc.reason or ""
    with contextlib.suppress(ValueError):
        reason = json.loads(exc.body or "{}").get("message", reason)
    return KubeError(f"{what}: {exc.status} {reason}", status=int(exc.status or 0))


def obj(value: object) -> dict[str, Any]:
    """The client returns untyped JSON objects; say what they are, once."""
    return cast(dict[str, Any], value)
