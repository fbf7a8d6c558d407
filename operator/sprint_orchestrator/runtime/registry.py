"""Image references pinned by digest, from the registry's own answer (the OCI distribution API).

Task Pods name their image by digest (`HOST/NAME@sha256:…`), so every Pod of a sprint runs the very
image the sprint started with even if its tag moves. The operator asks the registry once per sprint:

    HEAD /v2/NAME/manifests/TAG   (Accept: OCI index/manifest, Docker list/manifest v2)
    -> Docker-Content-Digest: sha256:…

An anonymous bearer-token challenge (`WWW-Authenticate: Bearer realm=…`) is answered as registries
expect; a registry that needs credentials is out of scope: name the image by digest in the
configuration and nothing is asked. Plain HTTP only for the hosts the configuration lists (the local
cluster's registry); every other registry over HTTPS.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import ImageBuildFailed

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_TIMEOUT_S = 30


@dataclass(frozen=True)
class Reference:
    host: str
    name: str
    tag: str | None
    digest: str | None

    def pinned(self, digest: str) -> str:
        return f"{self.host}/{self.name}@{digest}"


def parse(ref: str) -> Reference:
    """`host[:port]/name[:tag][@sha256:…]`; a first part without '.', ':' or 'localhost' is Docker Hub's."""
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise ImageBuildFailed(f"container.baseImage: {ref!r} has a malformed digest", "")
    first, _, path = rest.partition("/")
    if not path or not ("." in first or ":" in first or first == "localhost"):
        first, path = "docker.io", rest if "/" in rest else f"library/{rest}"
    name, tag = path, None
    if ":" in path.rsplit("/", 1)[-1]:
        name, tag = path.rsplit(":", 1)
    if not _NAME.fullmatch(name) or (tag is not None and not _TAG.fullmatch(tag)):
        raise ImageBuildFailed(f"container.baseImage: {ref!r} is not an image reference", "")
    return Reference(first, name, tag if tag or digest else "latest", digest or None)


def pin(ref: str, plain_http: Collection[str] = ()) -> str:
    """The reference by digest: as given when it has one, else the registry's digest of its tag."""
    parsed = parse(ref)
    if parsed.digest:
        return parsed.pinned(parsed.digest)
    host = "registry-1.docker.io" if parsed.host == "docker.io" else parsed.host
    scheme = "http" if parsed.host in plain_http else "https"
    url = f"{scheme}://{host}/v2/{parsed.name}/manifests/{parsed.tag}"
    digest = _head_digest(url, ref)
    if not _DIGEST.fullmatch(digest):
        raise ImageBuildFailed(f"the registry answered no sha256 digest for {ref} ({digest!r})", "")
    return parsed.pinned(digest)


def _head_digest(url: str, ref: str, token: str | None = None) -> str:
    headers = {"Accept": _ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, method="HEAD", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return str(response.headers.get("Docker-Content-Digest") or "")
    except urllib.error.HTTPError as exc:
        challenge = exc.headers.get("WWW-Authenticate") or ""
        if exc.code == 401 and token is None and challenge.lower().startswith("bearer "):
            return _head_digest(url, ref, _anonymous_token(challenge, ref))
        if exc.code == 404:
            raise ImageBuildFailed(
                f"container.baseImage: {ref} is not in its registry (push it there first)", ""
            ) from None
        raise ImageBuildFailed(f"the registry refused to resolve {ref}: HTTP {exc.code}", "") from None
    except (urllib.error.URLError, OSError) as exc:
        hint = ""
        if url.startswith("https://") and "WRONG_VERSION_NUMBER" in str(exc):
            hint = " (the registry speaks plain HTTP: set containers.registry_plain_http: true)"
        raise ImageBuildFailed(f"cannot reach the registry of {ref}: {exc}{hint}", "") from None


def _anonymous_token(challenge: str, ref: str) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm.startswith("https://"):
        raise ImageBuildFailed(f"the registry of {ref} asks for a token from {realm!r} (not HTTPS)", "")
    url = f"{realm}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            body = json.loads(response.read(1 << 20))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ImageBuildFailed(f"no anonymous pull token for {ref}: {exc}", "") from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ImageBuildFailed(f"no anonymous pull token for {ref} (credentials needed)", "")
    return token
