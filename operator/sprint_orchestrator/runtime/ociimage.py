"""A sprint image assembled in the registry, without Podman: the base image's manifest and layers as they
are, one more layer (the build Pod's packages, ocilayer.py) and a new config (the sprint's environment,
labels and working directory). What Podman's build would make of the same Containerfile, for the parts a
task sees; no layer of the base image is downloaded when target and base share a registry (mounted).

    base  = session.manifest("library/debian", "bookworm")      # its config, its layers
    image = assemble(source, target, base_ref, target_name, tag, {"LANG": "C.UTF-8"}, labels, layer)
    -> "10.0.0.1:5000/sprint-orchestrator/sprint@sha256:…"

The config and manifest are derived purely (`derive_config`, `derive_manifest`); `assemble` moves the
blobs (registry.py is the adapter).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

from ..errors import ImageBuildFailed
from . import registry
from .ocilayer import Layer

WORKDIR = "/workspace"
OCI_MANIFEST, DOCKER_MANIFEST = registry.MANIFEST_TYPES
LAYER_TYPES = {
    OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
    DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def derive_config(
    base: Mapping[str, Any],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    layer: Layer | None,
    created: str,
    what: str,
) -> dict[str, Any]:
    """The base image's config with the sprint's variables (set or replaced), labels, working directory
    and layer (its diff_id and a history entry)."""
    config = copy.deepcopy(dict(base))
    inner = dict(config.get("config") or {})
    env = [str(e) for e in inner.get("Env") or [] if str(e).partition("=")[0] not in environment]
    inner["Env"] = env + [f"{name}={value}" for name, value in sorted(environment.items())]
    inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
    inner["WorkingDir"] = WORKDIR
    config["config"] = inner
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + ([layer.diff_id] if layer else [])
    config["rootfs"] = rootfs
    entry = {"created": created, "created_by": f"sprint-orchestrator: {what}"}
    config["history"] = [*(config.get("history") or []), entry if layer else {**entry, "empty_layer": True}]
    config["created"] = created
    return config


def derive_manifest(base: registry.Manifest, config: bytes, layer: Layer | None) -> registry.Manifest:
    """The base manifest with the new config and, last, the new layer; same media types as the base."""
    doc = base.document
    media = base.media_type if base.media_type in LAYER_TYPES else str(doc.get("mediaType") or OCI_MANIFEST)
    if media not in LAYER_TYPES:
        raise ImageBuildFailed(f"the base image's manifest type {media!r} cannot be extended", "")
    manifest = {key: value for key, value in doc.items() if key not in ("annotations", "subject")}
    manifest["config"] = {**doc["config"], "digest": _digest(config), "size": len(config)}
    layers = list(doc.get("layers") or [])
    if layer is not None:
        layers.append({"mediaType": LAYER_TYPES[media], "digest": layer.digest, "size": layer.size})
    manifest["layers"] = layers
    body = json.dumps(manifest, indent=None, separators=(",", ":")).encode()
    return registry.Manifest(media, body, _digest(body))


def assemble(
    base_ref: str,
    target: str,
    tag: str,
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    layer: Layer | None,
    created: str,
    plain_http: list[str],
    what: str,
    auth: registry.Credentials | None = None,
) -> str:
    """Push base + `layer` + the new config to `target:tag` (target: host[:port]/name); the image by
    digest. `base_ref` is pinned (name@sha256:…)."""
    base = registry.parse(base_ref)
    dest = registry.parse(f"{target}:{tag}")
    source = registry.Session(base.host, plain_http, auth)
    sink = source if dest.host == base.host else registry.Session(dest.host, plain_http, auth)
    manifest = source.manifest(base.name, base.digest or base.tag or "latest")
    doc = manifest.document
    base_config = source.document(base.name, str(doc["config"]["digest"]))
    for entry in doc.get("layers") or []:
        sink.copy_blob(source, base.name, dest.name, str(entry["digest"]), int(entry["size"]))
    config = derive_config(base_config, environment, labels, layer, created, what)
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    if layer is not None:
        with layer.path.open("rb") as data:
            sink.push_blob(dest.name, layer.digest, data, layer.size)
    sink.push_blob(dest.name, _digest(config_bytes), io.BytesIO(config_bytes), len(config_bytes))
    new = derive_manifest(manifest, config_bytes, layer)
    return dest.pinned(sink.put_manifest(dest.name, tag, new))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
