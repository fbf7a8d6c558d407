"""A sprint image assembled without Podman: a build Pod's upload made into a layer, and base + layer +
config pushed through the real CNCF registry (hack/bin/registry), then run by Podman from there."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _podman import PODMAN_ENV
from _tars import tar_of
from sprint_orchestrator.errors import ImageBuildFailed, InvalidInput
from sprint_orchestrator.runtime import ociimage, ocilayer, registry
from sprint_orchestrator.runtime.safetar import UnsafeTar

NOW = "2026-12-07T12:00:00.000Z"
REGISTRY_BIN = Path(__file__).resolve().parents[1] / "hack" / "bin" / "registry"


def _tar(*members: tuple[str, str, bytes | str], mode: int = 0o644, uid: int = 1000) -> bytes:
    """As a build Pod's wrapper uploads it: owned by the agent's user unless told otherwise."""
    return tar_of(*members, mode=mode, uid=uid)


def _layer(tmp_path: Path, data: bytes, max_bytes: int = 1 << 20) -> ocilayer.Layer:
    return ocilayer.rewrite(io.BytesIO(data), tmp_path / f"{uuid.uuid4().hex}.tar.gz", max_bytes)


def test_a_layer_keeps_files_links_and_symlinks_owned_by_root_without_set_id_bits(tmp_path: Path) -> None:
    upload = _tar(
        ("dir", ".", ""),
        ("dir", "./usr/bin", ""),
        ("file", "./usr/bin/tool", b"#!/bin/sh\necho tool\n"),
        ("hard", "./usr/bin/tool2", "./usr/bin/tool"),
        ("sym", "./usr/bin/t", "/usr/bin/tool"),  # absolute: it resolves inside the container
        mode=0o4755,
    )
    layer = _layer(tmp_path, upload)
    blob = layer.path.read_bytes()
    assert (layer.digest, layer.size) == ("sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))
    plain = gzip.decompress(blob)
    assert layer.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["usr/bin", "usr/bin/t", "usr/bin/tool", "usr/bin/tool2"]
        assert {(m.uid, m.gid, m.mode) for m in members.values()} == {(0, 0, 0o755)}
        assert members["usr/bin/t"].linkname == "/usr/bin/tool"
        assert members["usr/bin/tool2"].islnk() and members["usr/bin/tool2"].linkname == "usr/bin/tool"
        assert tar.extractfile("usr/bin/tool").read() == b"#!/bin/sh\necho tool\n"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ((("file", "../escape", b"x"),), "'..'"),
        ((("file", "/etc/passwd", b"x"),), "absolute"),
        ((("file", "usr/.wh.bin", b""),), "whiteout"),
        ((("fifo", "run/pipe", ""),), "devices and FIFOs"),
        ((("dev", "dev/sda", ""),), "devices and FIFOs"),
        ((("hard", "usr/bin/x", "etc/shadow"),), "not a file earlier"),
    ],
)
def test_a_layer_refuses_escapes_whiteouts_devices_and_outside_hard_links(
    tmp_path: Path, members: tuple[tuple[str, str, bytes | str], ...], problem: str
) -> None:
    with pytest.raises(UnsafeTar, match=problem):
        _layer(tmp_path, _tar(("file", "ok.txt", b"fine"), *members))
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_a_layer_over_its_size_cap_or_not_a_tar_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeTar, match="more than 10 bytes"):
        _layer(tmp_path, _tar(("file", "big", b"x" * 11)), max_bytes=10)
    with pytest.raises(UnsafeTar, match="not a readable tar"):
        _layer(tmp_path, b"this is no tar stream" * 40)
    assert list(tmp_path.iterdir()) == []


def test_the_config_takes_the_sprint_s_environment_labels_workdir_and_layer() -> None:
    base = {
        "architecture": "amd64",
        "config": {"Env": ["PATH=/bin", "LANG=C"], "Labels": {"base": "1"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
        "history": [{"created_by": "base"}],
    }
    layer = ocilayer.Layer(Path("x"), "sha256:" + "b" * 64, "sha256:" + "c" * 64, 10)
    config = ociimage.derive_config(base, {"LANG": "C.UTF-8", "MARK": "1"}, {"k": "v"}, layer, "T", "apt: jq")
    assert config["config"]["Env"] == ["PATH=/bin", "LANG=C.UTF-8", "MARK=1"]
    assert config["config"]["Labels"] == {"base": "1", "k": "v"}
    assert config["config"]["WorkingDir"] == "/workspace"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "a" * 64, "sha256:" + "c" * 64]
    assert config["history"][-1] == {"created": "T", "created_by": "sprint-orchestrator: apt: jq"}
    assert base["config"]["Env"] == ["PATH=/bin", "LANG=C"]  # the base's own document is untouched
    bare = ociimage.derive_config(base, {"A": "1"}, {}, None, "T", "env: A")
    assert bare["rootfs"]["diff_ids"] == base["rootfs"]["diff_ids"] and bare["history"][-1]["empty_layer"]


def test_an_index_is_resolved_to_this_machine_s_platform_and_a_missing_one_is_named() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert registry.platform_digest(index, "amd64") == "sha256:" + "2" * 64
    with pytest.raises(ImageBuildFailed, match="linux/s390x"):
        registry.platform_digest(index, "s390x")


# -- through a real registry ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The CNCF distribution registry the local cluster runs, on plain HTTP on 127.0.0.1."""
    with _serve_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


@contextlib.contextmanager
def _serve_registry(root: Path, auth: dict[str, Any] | None = None) -> Iterator[str]:
    if not REGISTRY_BIN.exists():
        pytest.fail(f"{REGISTRY_BIN} is missing: hack/build-node.sh builds it (hack/setup.sh runs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        **({"auth": auth} if auth else {}),
    }
    (root / "config.yml").write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(REGISTRY_BIN), "serve", str(root / "config.yml")], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            assert time.monotonic() < deadline and process.poll() is None, "the registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _push_base(host: str, name: str, tmp_path: Path, auth: registry.Credentials | None = None) -> str:
    """A one-layer OCI image (a static busybox-free file tree) pushed as `name:base`; its reference."""
    session = registry.Session(host, [host], auth)
    layer = _layer(tmp_path, _tar(("dir", "etc", ""), ("file", "etc/base.txt", b"from the base\n"), uid=0))
    with layer.path.open("rb") as data:
        session.push_blob(name, layer.digest, data, layer.size)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    session.push_blob(name, config_digest, io.BytesIO(config), len(config))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": ociimage.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": ociimage.LAYER_TYPES[ociimage.OCI_MANIFEST],
                    "digest": layer.digest,
                    "size": layer.size,
                }
            ],
        }
    ).encode()
    digest = session.put_manifest(
        name,
        "base",
        registry.Manifest(ociimage.OCI_MANIFEST, manifest, "sha256:" + hashlib.sha256(manifest).hexdigest()),
    )
    return f"{host}/{name}@{digest}"


def test_an_image_is_assembled_in_the_registry_with_the_base_layers_mounted_and_one_more_layer(
    local_registry: str, tmp_path: Path
) -> None:
    host = local_registry
    base = _push_base(host, "team/base", tmp_path)
    layer = _layer(tmp_path, _tar(("dir", "opt", ""), ("file", "opt/tool.txt", b"from the build\n")))
    pinned = ociimage.assemble(
        base,
        f"{host}/sprint-orchestrator/sprint",
        "abc123",
        {"MARK": "m1"},
        {"k": "v"},
        layer,
        NOW,
        [host],
        "x",
    )
    assert pinned.startswith(f"{host}/sprint-orchestrator/sprint@sha256:")
    session = registry.Session(host, [host])
    manifest = session.manifest("sprint-orchestrator/sprint", "abc123")
    assert manifest.digest == pinned.rsplit("@", 1)[1]
    base_manifest = session.manifest("team/base", "base").document
    layers = manifest.document["layers"]
    assert [entry["digest"] for entry in layers] == [base_manifest["layers"][0]["digest"], layer.digest]
    config = session.document("sprint-orchestrator/sprint", manifest.document["config"]["digest"])
    assert config["config"]["Env"] == ["PATH=/bin", "MARK=m1"] and config["config"]["Labels"] == {"k": "v"}
    assert config["rootfs"]["diff_ids"][-1] == layer.diff_id
    assert session.has_manifest("sprint-orchestrator/sprint", "abc123")
    assert not session.has_manifest("sprint-orchestrator/sprint", "other")


@pytest.mark.podman
def test_an_assembled_image_runs_in_podman_with_its_layer_and_environment(
    local_registry: str, tmp_path: Path
) -> None:
    """The proof that the manifest, config and layer are what a container runtime expects: Podman pulls
    the image from the registry and runs a command that reads the base's file, the layer's and the env."""
    host = local_registry
    busybox = Path(__file__).resolve().parents[1] / "hack" / "bin" / "busybox"
    if not busybox.exists():
        found = shutil.which("busybox")
        assert found, "busybox-static is a package hack/setup.sh installs"
        busybox = Path(found)
    base = _push_base(host, "team/runnable", tmp_path)
    tool = _tar(("dir", "bin", ""), ("file", "bin/busybox", busybox.read_bytes()), mode=0o755)
    layer = _layer(tmp_path, tool, max_bytes=64 << 20)
    tag = uuid.uuid4().hex[:12]
    pinned = ociimage.assemble(
        base, f"{host}/sprint-orchestrator/sprint", tag, {"MARK": "m2"}, {}, layer, NOW, [host], "x"
    )
    try:
        pull = subprocess.run(
            ["podman", "pull", "--tls-verify=false", "-q", pinned],
            env=PODMAN_ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pull.returncode == 0, pull.stderr
        run = subprocess.run(
            ["podman", "run", "--rm", "--network=none", pinned, "/bin/busybox", "sh", "-c",
             "cat /etc/base.txt; echo mark=$MARK; /bin/busybox pwd"],
            env=PODMAN_ENV, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.split("\n")[:3] == ["from the base", "mark=m2", "/workspace"]
    finally:
        subprocess.run(["podman", "rmi", "-f", pinned], env=PODMAN_ENV, capture_output=True, check=False)


# -- a registry that needs credentials --------------------------------------------------------------

USER, PASSWORD = "sprint-bot", "s3cret-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same registry with htpasswd (bcrypt) authentication: every request needs Basic credentials."""
    root = tmp_path_factory.mktemp("private")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the standard library's bcrypt ($2b$) through libxcrypt

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
    (root / "htpasswd").write_text(f"{USER}:{hashed}\n")
    auth = {"htpasswd": {"realm": "sprint-test", "path": str(root / "htpasswd")}}
    with _serve_registry(root, auth) as host:
        yield host


def test_an_image_is_assembled_in_a_registry_that_needs_credentials_and_without_them_the_error_says_where(
    private_registry: str, tmp_path: Path
) -> None:
    host = private_registry
    auth_file = tmp_path / "config.json"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth_file.write_text(json.dumps({"auths": {f"https://{host}/v1/": {"auth": token}}}))
    auth = registry.load_credentials(str(auth_file))
    assert auth == {host: (USER, PASSWORD)}
    base = _push_base(host, "team/private", tmp_path, auth)
    assert registry.pin(f"{host}/team/private:base", [host], auth) == base
    layer = _layer(tmp_path, _tar(("file", "opt/x.txt", b"x")))
    target = f"{host}/sprint-orchestrator/sprint"
    pinned = ociimage.assemble(base, target, "p1", {"A": "1"}, {}, layer, NOW, [host], "x", auth)
    assert registry.Session(host, [host], auth).has_manifest("sprint-orchestrator/sprint", "p1")
    assert pinned.startswith(f"{target}@sha256:")
    with pytest.raises(
        ImageBuildFailed, match=r"HTTP 401 \(name the registry in containers.registry_auth_file\)"
    ):
        ociimage.assemble(base, target, "p2", {"A": "2"}, {}, layer, NOW, [host], "x")
    wrong = {host: (USER, "wrong")}
    with pytest.raises(ImageBuildFailed, match="HTTP 401"):
        registry.pin(f"{host}/team/private:base", [host], wrong)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "JSONDecodeError"),
        ('{"credsStore": "desktop"}', "KeyError"),
        ('{"auths": {"r.example": {"auth": "bm8tY29sb24="}}}', "user:password"),
    ],
)
def test_a_credentials_file_that_is_not_a_docker_config_is_refused_naming_the_setting(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "auth.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=rf"containers.registry_auth_file .*{problem}"):
        registry.load_credentials(str(path))
    plain = tmp_path / "plain.json"
    plain.write_text('{"auths": {"r.example:5000": {"username": "u", "password": "p:w"}}}')
    assert registry.load_credentials(str(plain)) == {"r.example:5000": ("u", "p:w")}
