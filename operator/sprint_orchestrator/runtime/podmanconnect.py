"""Connecting to Podman and checking it can run our hardened containers: the service (the configured
URL, ours on the run dir's socket, or a new one) and each problem said with how to fix it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import podman.errors
from podman import PodmanClient

from ..settings import Settings
from . import Limits, ownership, service
from .runcver import runc_problem

if TYPE_CHECKING:
    from .podman import PodmanRuntime

_REPO_CONF = Path(__file__).resolve().parents[3] / "hack" / "containers.conf"
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


def problems(rt: PodmanRuntime) -> list[str]:
    """Problems with this Podman, each saying how to fix it; [] when a hardened container runs."""
    try:
        oci = rt.client.info()["host"]["ociRuntime"]  # type: ignore[no-untyped-call]
        name = oci["name"]
    except (podman.errors.APIError, OSError) as exc:
        return [f"the Podman API at {rt.service.url} does not answer ({exc}); run hack/setup-podman.sh."]
    if name != "runc":
        return [f"Podman uses the OCI runtime {name!r}; set CONTAINERS_CONF to hack/containers.conf (runc)."]
    vulnerable = runc_problem(str(oci.get("version") or ""))
    if vulnerable:
        return [vulnerable]
    if rt.userns and (missing := ownership.subid_problem(_read(SUBUID), _read(SUBGID))):
        return [missing]
    if not rt.client.images.exists(rt.base_image):
        return [f"the base image {rt.base_image} is missing; build it with hack/base-image.sh."]
    result = rt.run_oneshot(rt.base_image, ["true"], None, 60, Limits(memory_bytes=64 << 20, pids=64))
    if result.exit_code != 0:
        return [
            f"a trivial hardened container failed ({result.log_tail.strip()[-300:]}); if it mentions "
            "setrlimit, set CONTAINERS_CONF to hack/containers.conf (default_ulimits)."
        ]
    return []


def service_for(settings: Settings) -> service.ServiceProcess:
    """settings.podman_url's service, else the one answering on the run dir's socket, else a new one."""
    if settings.podman_url:
        return service.ServiceProcess(settings.podman_url, None)
    conf = settings.env.get("CONTAINERS_CONF") or (str(_REPO_CONF) if _REPO_CONF.exists() else None)
    env = service.podman_environment(settings.env, Path(conf) if conf else None)
    run_dir = settings.run_dir
    if (run_dir / service.SOCKET_NAME).exists() and answers(service.socket_url(run_dir)):
        return service.ServiceProcess(service.socket_url(run_dir), None)
    return service.start_service(run_dir, env)


def answers(url: str) -> bool:
    try:
        with PodmanClient(base_url=url, timeout=5) as client:
            return bool(client.ping())
    except (podman.errors.APIError, OSError):
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
