"""Operator start-up: kopf settings (storage in status, our finalizer) and the adapters in `memo`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from typing import Any

import kopf

from .. import GROUP
from ..errors import InvalidInput
from ..settings import from_env, in_cluster_api_server
from . import diffs, housekeeping
from .context import OperatorContext
from .diffbase import DigestDiffBaseStorage

log = logging.getLogger("sprint_orchestrator.operator")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's own bookkeeping lives in .status (declared in the CRDs under status.kopf), never in
    # annotations: Argo CD ignores .status but would see every annotation write as drift.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    # a digest of the spec, not a second copy of it: a 1,000-task Sprint must fit in one etcd object
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        field="status.kopf.lastHandledConfiguration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.peering.standalone = True
    settings.execution.max_workers = 32
    # Blocking adapters (git, Podman, the Kubernetes client) run in threads; a waiting container holds
    # one for its whole run, so the default pool (cores + 4) would starve everything else.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="sprint-orchestrator")
    )
    ctx = getattr(memo, "context", None)
    if ctx is None:
        ctx = OperatorContext.create(from_env())
        memo["context"] = ctx
    try:
        await ctx.start()
        memo["diff_server"] = await diffs.start(ctx)  # the dashboard's diff reads, when configured
        housekeeping.schedule(ctx)  # retention of what finished sprints left before this start
    except InvalidInput as exc:  # a state directory we must not use: stop with the reason, not retry
        raise kopf.PermanentError(str(exc)) from exc
    log.info("operator started", extra={"state_dir": str(ctx.settings.state_dir)})


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    server = memo.get("diff_server")
    if server is not None:
        await server.cleanup()
    ctx = memo.get("context")
    if isinstance(ctx, OperatorContext):
        await ctx.stop()


@kopf.on.probe(id="sprints")
def probe_sprints(memo: kopf.Memo, **_: Any) -> int:
    ctx = memo.get("context")
    return len(ctx.sprint_loops) if isinstance(ctx, OperatorContext) else 0


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a cluster: the service account, at the API server's Service address (kopf's default names
    kubernetes.default.svc, which needs cluster DNS); elsewhere: $KUBECONFIG (read at start)."""
    info = kopf.login_with_service_account(**kwargs)
    server = in_cluster_api_server()
    if info is not None and server:
        return dataclasses.replace(info, server=server)
    return info or kopf.login_with_kubeconfig(**kwargs)
