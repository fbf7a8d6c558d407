"""Operator start-up: kopf settings (storage in status, our finalizer) and the adapters in `memo`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf

from .. import GROUP
from ..settings import from_env
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
    await ctx.start()
    log.info("operator started", extra={"state_dir": str(ctx.settings.state_dir)})


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    ctx = memo.get("context")
    if isinstance(ctx, OperatorContext):
        await ctx.stop()


@kopf.on.probe(id="sprints")
def probe_sprints(memo: kopf.Memo, **_: Any) -> int:
    ctx = memo.get("context")
    return len(ctx.sprint_loops) if isinstance(ctx, OperatorContext) else 0


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a cluster: the service account; elsewhere: $KUBECONFIG (read when the operator starts)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
