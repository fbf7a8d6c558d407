"""Image references pinned by digest, from the registry's own answer (the OCI distribution API).

Task Pods name their image by digest (`HOST/NAME@sha256:…`), so every Pod of a sprint runs the very
image the sprint started with even if its tag moves. The operator asks the registry once per sprint:

    HEAD /v2/NAME/manifests/TAG   (Accept: OCI index/manifest, Docker list/manifest v2)
    -> Docker-Content-Digest: sha256:…

An anonymous bearer-token challenge (`WWW-Authenticate: Bearer realm=…`) is answered as registries
expect; a registry that needs credentials is out of scope: name the image by digest in the
configuration and nothing is asked. Plain HTTP only for the hosts the configuration lists (the local
cluster's registry); every other registry over HTTPS.

`Session` speaks the rest of the API a sprint image assembled without Podman needs (`ociimage.py`):
a manifest (an index resolved to this machine's platform) and a blob by digest, a blob mounted from
another repository of the same registry or uploaded (POST, then one PUT with `?digest=`), a manifest
put under a tag. The bearer-token dance is the same for push, with the scope the registry names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ImageBuildFailed, InvalidInput

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


Credentials = Mapping[str, tuple[str, str]]  # registry host -> (user, password)


def pin(ref: str, plain_http: Collection[str] = (), auth: Credentials | None = None) -> str:
    """The reference by digest: as given when it has one, else the registry's digest of its tag."""
    parsed = parse(ref)
    if parsed.digest:
        return parsed.pinned(parsed.digest)
    session = Session(parsed.host, plain_http, auth)
    try:
        digest = session.head_digest(parsed.name, str(parsed.tag))
    except _Missing:
        missing = f"container.baseImage: {ref} is not in its registry (push it there first)"
        raise ImageBuildFailed(missing, "") from None
    if not _DIGEST.fullmatch(digest):
        raise ImageBuildFailed(f"the registry answered no sha256 digest for {ref} ({digest!r})", "")
    return parsed.pinned(digest)


def load_credentials(path: str | None) -> dict[str, tuple[str, str]]:
    """`containers.registry_auth_file`: a Docker config JSON (what a `kubernetes.io/dockerconfigjson`
    Secret holds), `{"auths": {"HOST": {"auth": base64("user:password")}}}` or with `username` and
    `password`; keys may be URLs (`https://HOST/v1/`). None: no credentials."""
    if not path:
        return {}
    where = f"containers.registry_auth_file ({path})"
    try:
        auths = json.loads(Path(path).read_text())["auths"]
        return {_host_of(key): _user_password(entry) for key, entry in auths.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"{where}: not a Docker config with auths ({type(exc).__name__}: {exc})") from None


def _host_of(key: str) -> str:
    return key.split("://", 1)[-1].split("/", 1)[0]


def _user_password(entry: Mapping[str, Any]) -> tuple[str, str]:
    if entry.get("auth"):
        user, sep, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        if not sep:
            raise ValueError("auth is not base64 of user:password")
        return user, password
    return str(entry["username"]), str(entry["password"])


def _token(challenge: str, where: str, plain_http: Collection[str], login: tuple[str, str] | None) -> str:
    """The bearer token a challenge asks for: anonymous, or with the registry's credentials."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.netloc in plain_http):
        raise ImageBuildFailed(f"the registry of {where} asks for a token from {realm!r} (not HTTPS)", "")
    request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}")
    if login is not None:
        request.add_unredirected_header("Authorization", _basic(login))
    kind = "token" if login else "anonymous pull token"
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            body = json.loads(response.read(1 << 20))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ImageBuildFailed(f"no {kind} for {where}: {exc}{_login_hint(login)}", "") from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ImageBuildFailed(f"no {kind} for {where} (credentials needed){_login_hint(login)}", "")
    return token


def _basic(login: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()


def _login_hint(login: tuple[str, str] | None) -> str:
    return "" if login else " (name the registry in containers.registry_auth_file)"


MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_MAX_DOCUMENT = 8 << 20  # a manifest or an image config
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class Manifest:
    media_type: str
    body: bytes
    digest: str

    @property
    def document(self) -> dict[str, Any]:
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data


class Session:
    """One registry host, for reading an image and writing one; errors are `ImageBuildFailed`."""

    def __init__(self, host: str, plain_http: Collection[str] = (), auth: Credentials | None = None) -> None:
        self.host = host
        api = "registry-1.docker.io" if host == "docker.io" else host
        self.base = f"{'http' if host in plain_http else 'https'}://{api}"
        self.plain_http = tuple(plain_http)
        self.login = (auth or {}).get(host)
        self._headers: dict[str, str] = {}  # the repository -> the Authorization its challenge asked for

    def head_digest(self, name: str, tag: str) -> str:
        """The digest the registry answers for `name:tag` (HEAD, as `pin` asks)."""
        with self._open("HEAD", f"/v2/{name}/manifests/{tag}", {"Accept": _ACCEPT}) as response:
            return str(response.headers.get("Docker-Content-Digest") or "")

    def manifest(self, name: str, reference: str) -> Manifest:
        """The image manifest of `name:reference`; an index is resolved to this machine's platform."""
        found = self._manifest(name, reference)
        if found.media_type in INDEX_TYPES or "manifests" in found.document:
            found = self._manifest(name, platform_digest(found.document, _arch()))
        if found.media_type not in MANIFEST_TYPES and found.document.get("schemaVersion") != 2:
            raise ImageBuildFailed(f"{self.host}/{name}:{reference}: unsupported manifest {found.media_type}")
        return found

    def _manifest(self, name: str, reference: str) -> Manifest:
        accept = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
        with self._open("GET", f"/v2/{name}/manifests/{reference}", {"Accept": accept}) as response:
            body = response.read(_MAX_DOCUMENT + 1)
            media = str(response.headers.get("Content-Type") or "").split(";")[0].strip()
        if len(body) > _MAX_DOCUMENT:
            raise ImageBuildFailed(f"{self.host}/{name}:{reference}: a manifest over {_MAX_DOCUMENT} bytes")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImageBuildFailed(f"{self.host}/{name}@{reference}: the registry sent other content")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ImageBuildFailed(f"{self.host}/{name}:{reference}: the manifest is not JSON") from None
        return Manifest(media or str(doc.get("mediaType") or ""), body, digest)

    def document(self, name: str, digest: str) -> dict[str, Any]:
        """A small JSON blob (an image config), checked against its digest."""
        with self._open("GET", f"/v2/{name}/blobs/{digest}") as response:
            body = response.read(_MAX_DOCUMENT + 1)
        if len(body) > _MAX_DOCUMENT or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise ImageBuildFailed(f"{self.host}/{name}: blob {digest} is too large or not what it says")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ImageBuildFailed(f"{self.host}/{name}: blob {digest} is not a JSON object")
        return data

    def has_blob(self, name: str, digest: str) -> bool:
        try:
            with self._open("HEAD", f"/v2/{name}/blobs/{digest}"):
                return True
        except _Missing:
            return False

    def has_manifest(self, name: str, tag: str) -> bool:
        try:
            with self._open("HEAD", f"/v2/{name}/manifests/{tag}", {"Accept": ", ".join(MANIFEST_TYPES)}):
                return True
        except _Missing:
            return False

    def copy_blob(self, source: Session, from_name: str, name: str, digest: str, size: int) -> None:
        """Make blob `digest` exist in `name`: already there, mounted from `from_name` (same registry),
        else streamed from `source` without touching the disk."""
        if self.has_blob(name, digest):
            return
        query = f"?mount={digest}&from={from_name}" if source.host == self.host else ""
        with self._open("POST", f"/v2/{name}/blobs/uploads/{query}", body=b"") as response:
            if response.status == 201:
                return
            location = str(response.headers.get("Location") or "")
        with source._open("GET", f"/v2/{from_name}/blobs/{digest}") as blob:
            self._finish_upload(name, location, digest, blob, size)

    def push_blob(self, name: str, digest: str, data: IO[bytes], size: int) -> None:
        if self.has_blob(name, digest):
            return
        with self._open("POST", f"/v2/{name}/blobs/uploads/", body=b"") as response:
            location = str(response.headers.get("Location") or "")
        self._finish_upload(name, location, digest, data, size)

    def _finish_upload(self, name: str, location: str, digest: str, data: Any, size: int) -> None:
        if not location:
            raise ImageBuildFailed(f"{self.host}/{name}: the registry started no upload (no Location)")
        target = urllib.parse.urljoin(self.base + "/", location)
        if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(self.base).netloc:
            raise ImageBuildFailed(f"{self.host}/{name}: the registry sent the upload elsewhere ({target})")
        sep = "&" if "?" in target else "?"
        path = target[len(self.base) :] + f"{sep}digest={urllib.parse.quote(digest)}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with self._open("PUT", path, headers, body=data):
            pass

    def put_manifest(self, name: str, tag: str, manifest: Manifest) -> str:
        headers = {"Content-Type": manifest.media_type}
        with self._open("PUT", f"/v2/{name}/manifests/{tag}", headers, body=manifest.body) as response:
            answered = str(response.headers.get("Docker-Content-Digest") or manifest.digest)
        if answered != manifest.digest:
            raise ImageBuildFailed(f"{self.host}/{name}:{tag}: stored as {answered}, not {manifest.digest}")
        return manifest.digest

    def _open(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Any:
        """The response of one request (a context manager); 404 raises `_Missing`, any other failure
        `ImageBuildFailed`. A challenge is answered once: Basic with the registry's credentials, Bearer
        with a token for the scope it names (with the credentials when there are some)."""
        scope = self._scope_of(path)
        for attempt in range(2):
            url = self.base + path
            request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
            if scope in self._headers:
                request.add_unredirected_header("Authorization", self._headers[scope])
            try:
                return urllib.request.urlopen(request, timeout=_TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                challenge = exc.headers.get("WWW-Authenticate") or ""
                exc.close()
                if exc.code == 401 and attempt == 0 and self._answer(scope, challenge, path):
                    if hasattr(body, "seek"):
                        body.seek(0)
                    continue
                if exc.code == 404 and method in ("GET", "HEAD"):
                    raise _Missing(path) from None
                hint = _login_hint(self.login) if exc.code in (401, 403) else ""
                refused = f"the registry {self.host} refused {method} {path}: HTTP {exc.code}{hint}"
                raise ImageBuildFailed(refused) from None
            except (urllib.error.URLError, OSError) as exc:
                hint = ""
                if url.startswith("https://") and "WRONG_VERSION_NUMBER" in str(exc):
                    hint = " (the registry speaks plain HTTP: set containers.registry_plain_http: true)"
                unreachable = f"cannot reach the registry {self.host} ({method} {path}): {exc}{hint}"
                raise ImageBuildFailed(unreachable) from None
        raise ImageBuildFailed(f"the registry {self.host} refused {method} {path} after its token")

    def _answer(self, scope: str, challenge: str, path: str) -> bool:
        """Whether the challenge could be answered (then the request is sent again)."""
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "bearer":
            token = _token(challenge, f"{self.host}{path}", self.plain_http, self.login)
            self._headers[scope] = f"Bearer {token}"
            return True
        if kind == "basic" and self.login is not None:
            self._headers[scope] = _basic(self.login)
            return True
        return False

    @staticmethod
    def _scope_of(path: str) -> str:
        return path.split("/blobs/")[0].split("/manifests/")[0]


class _Missing(ImageBuildFailed):
    pass


def platform_digest(index: dict[str, Any], arch: str) -> str:
    """The digest of the linux/`arch` image of an image index (its first match)."""
    for entry in index.get("manifests") or []:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            digest = str(entry.get("digest") or "")
            if _DIGEST.fullmatch(digest):
                return digest
    raise ImageBuildFailed(f"the image index has no linux/{arch} image", "")


def _arch() -> str:
    machine = platform.machine()
    return _ARCHES.get(machine, machine)
