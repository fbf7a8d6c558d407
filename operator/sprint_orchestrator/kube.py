"""The Kubernetes API adapter: the only module that imports the `kubernetes` client.

Domain verbs over Sprint and Task resources and Events. Calls are synchronous (the official client);
handlers run them in a worker thread. Every write is counted (`writes`), so benchmarks and metrics
can report API writes per task.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from . import GROUP, LABEL_SPRINT, VERSION
from .kubebase import KubeError, unreachable
from .kubebase import obj as _obj
from .kubebase import wrap as _wrap
from .kubepods import PodVerbs
from .lease import fence

__all__ = ["SPRINTS", "TASKS", "Kube", "KubeError", "unreachable"]

SPRINTS = "sprints"
TASKS = "tasks"
Items = list[dict[str, Any]]


CONFLICT_PAUSE_S = 0.01  # the first pause after a 409 is up to 20 ms, doubling
CONFLICT_PAUSE_MAX_S = 1.0


class Kube(PodVerbs):
    """A thin, counted wrapper around the custom-objects and core APIs (the Pods runtime's verbs:
    kubepods.py)."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> Kube:
        """Load a kubeconfig (KUBECONFIG / ~/.kube/config), or the in-cluster service account."""
        try:
            if path:
                api = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
            else:
                try:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                    api = client.ApiClient()
                except config.ConfigException:
                    api = config.new_client_from_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as exc:
            raise KubeError(f"cannot load Kubernetes credentials: {exc}") from exc
        return cls(api)

    def close(self) -> None:
        """Close the connection pool (the client keeps sockets open otherwise)."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    def _count(self, key: str) -> None:
        with self._lock:
            self.writes[key] += 1

    # --- reads --------------------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _obj(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(f"get {plural}/{name} in {namespace}", exc) from exc

    def list_objects(
        self, plural: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        try:
            if namespace:
                out = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, label_selector=selector
                )
            else:
                out = self.custom.list_cluster_custom_object(GROUP, VERSION, plural, label_selector=selector)
        except ApiException as exc:
            raise _wrap(f"list {plural}", exc) from exc
        return list(_obj(out).get("items", []))

    def list_versioned(self, plural: str, namespace: str) -> tuple[Items, str]:
        """All objects of a namespace and the list's resourceVersion (to start a watch from)."""
        try:
            out: dict[str, Any] = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, plural
            )
        except ApiException as exc:
            raise _wrap(f"list {plural} in {namespace}", exc) from exc
        return [dict(item) for item in out.get("items", [])], str(out["metadata"]["resourceVersion"])

    def watch(
        self, plural: str, namespace: str, resource_version: str, timeout_seconds: int = 300
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events after `resource_version`: ADDED, MODIFIED, DELETED, BOOKMARK.

        Ends after `timeout_seconds` (watch again from the last resourceVersion seen); a KubeError with
        status 410 means the version is too old: list again.
        """
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True,
            ):
                if event["type"] == "ERROR":
                    raw = event.get("raw_object") or {}
                    raise KubeError(f"watch {plural}: {raw.get('message')}", int(raw.get("code") or 0))
                yield str(event["type"]), dict(event["raw_object"])
        except ApiException as exc:
            raise _wrap(f"watch {plural} in {namespace}", exc) from exc
        finally:
            stream.stop()  # type: ignore[no-untyped-call]

    def tasks_of(self, namespace: str, sprint_name: str) -> list[dict[str, Any]]:
        return self.list_objects(TASKS, namespace, f"{LABEL_SPRINT}={sprint_name}")

    # --- writes -------------------------------------------------------------------------------

    def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create an object; if it exists already, return the existing one (idempotent)."""
        name = body["metadata"]["name"]
        try:
            fence()
            self._count(f"create {plural}")
            created = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, dict(body)
            )
            return _obj(created), True
        except ApiException as exc:
            if exc.status != 409:
                raise _wrap(f"create {plural}/{name} in {namespace}", exc) from exc
        existing = self.get(plural, namespace, name)
        if existing is None:
            raise KubeError(f"create {plural}/{name} in {namespace}: conflict, then not found")
        return existing, False

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch `.status`; returns None when the object is gone."""
        try:
            fence()
            self._count(f"status {plural}")
            return _obj(
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, {"status": dict(status)}
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(f"patch status of {plural}/{name} in {namespace}", exc) from exc

    def patch_status_merged(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        merge: Callable[[list[dict[str, Any]] | None], list[dict[str, Any]]],
        attempts: int = 10,
    ) -> dict[str, Any] | None:
        """Merge-patch `.status` with `.status.conditions` made by `merge` from the conditions the object
        has now, written only if the object did not change since it was read (its resourceVersion is
        the patch's precondition: the API server answers 409 otherwise, and we read and merge again).
        A JSON merge patch replaces a list whole: without this, a writer holding an older copy would
        drop the conditions another writer set meanwhile. None when the object is gone.
        After a conflict it waits a random pause that grows with each one (up to CONFLICT_PAUSE_MAX_S):
        two writers in lockstep would otherwise read and write in the same order every round, and one
        could lose every time."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(random.uniform(0, min(CONFLICT_PAUSE_MAX_S, CONFLICT_PAUSE_S * 2**attempt)))
            current = self.get(plural, namespace, name)
            if current is None:
                return None
            conditions = merge((current.get("status") or {}).get("conditions"))
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": {**status, "conditions": conditions},
            }
            try:
                fence()
                self._count(f"status {plural}")
                return _obj(
                    self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, namespace, plural, name, body
                    )
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise _wrap(f"patch status of {plural}/{name} in {namespace}", exc) from exc
        raise KubeError(
            f"patch status of {plural}/{name} in {namespace}: still conflicting after {attempts} reads", 409
        )

    def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch metadata/spec (annotations for human actions, spec.suspend)."""
        try:
            fence()
            self._count(f"patch {plural}")
            return _obj(
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, dict(patch)
                )
            )
        except ApiException as exc:
            raise _wrap(f"patch {plural}/{name} in {namespace}", exc) from exc

    def apply_sprint(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        return self.create(SPRINTS, namespace, manifest)

    def delete(self, plural: str, namespace: str, name: str) -> bool:
        try:
            fence()
            self._count(f"delete {plural}")
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, propagation_policy="Background"
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _wrap(f"delete {plural}/{name} in {namespace}", exc) from exc

    def event(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "sprintctl",
    ) -> None:
        """Post a Kubernetes Event about `obj` (used by the CLI, and by handlers for the Events that must
        be written before the status they explain: kopf posts its events later, from a queue)."""
        meta = obj["metadata"]
        stamp = dt.datetime.now(dt.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            first_timestamp=stamp,
            last_timestamp=stamp,
            count=1,
            source=client.V1EventSource(component=component),
        )
        try:
            fence()
            self._count("create events")
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as exc:
            raise _wrap(f"post event {reason}", exc) from exc

    def ensure_namespace(self, name: str) -> None:
        try:
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:
                raise _wrap(f"create namespace {name}", exc) from exc

    # --- the Lease of the active replica (lease.py; never fenced: it is how a replica gets the fence) --

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(
                client.CoordinationV1Api(self.api_client).read_namespaced_lease(name, namespace)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(f"get lease {name} in {namespace}", exc) from exc

    def write_lease(self, namespace: str, name: str, spec: Mapping[str, Any], version: str | None) -> bool:
        """Create the Lease (version None) or replace the one read at `version`; False when another
        writer got there first (409: it exists, or it changed since it was read)."""
        api = client.CoordinationV1Api(self.api_client)
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if version:
            meta["resourceVersion"] = version  # the precondition: 409 if it changed since it was read
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": dict(spec),
        }
        try:
            self._count("write leases")
            if version is None:
                api.create_namespaced_lease(namespace, body)
            else:
                api.replace_namespaced_lease(name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise _wrap(f"write lease {name} in {namespace}", exc) from exc
        return True
