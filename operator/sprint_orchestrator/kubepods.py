"""The Kubernetes adapter's verbs for the Pods runtime: Pods, their Events and logs, and each Pod's
Secret and NetworkPolicy (runtime/podnet.py). Part of `kube.Kube`; counted like its other writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .kubebase import KubeError, obj, wrap


class PodVerbs:
    api_client: client.ApiClient
    core: client.CoreV1Api

    def _count(self, key: str) -> None:
        raise NotImplementedError

    # --- Pods (the pods runtime) ------------------------------------------------------------------

    def _plain(self, value: object) -> dict[str, Any]:
        return obj(self.api_client.sanitize_for_serialization(value))  # type: ignore[no-untyped-call]

    def create_pod(self, namespace: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create a Pod; if one of that name exists, return it and False (the caller checks its labels)."""
        name = body["metadata"]["name"]
        try:
            self._count("create pods")
            created = self.core.create_namespaced_pod(namespace, dict(body))  # type: ignore[arg-type]
            return self._plain(created), True
        except ApiException as exc:
            if exc.status != 409:
                raise wrap(f"create pod {name} in {namespace}", exc) from exc
        existing = self.get_pod(namespace, name)
        if existing is None:
            raise KubeError(f"create pod {name} in {namespace}: conflict, then not found")
        return existing, False

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(self.core.read_namespaced_pod(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise wrap(f"get pod {name} in {namespace}", exc) from exc

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, Pod) for each change of one Pod after `resource_version` (ADDED, MODIFIED, DELETED), for
        up to `timeout_seconds`; a KubeError with status 410 means the version is too old: get it again."""
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                resource_version=resource_version, timeout_seconds=timeout_seconds, deserialize=False,
                _request_timeout=timeout_seconds + 30,
            ):  # fmt: skip
                yield str(event["type"]), dict(event["object"])
        except ApiException as exc:
            raise wrap(f"watch pod {name} in {namespace}", exc) from exc
        finally:
            stream.stop()  # type: ignore[no-untyped-call]

    def pod_events(self, namespace: str, name: str, uid: str, reason: str) -> list[dict[str, Any]]:
        """The Events with `reason` about one Pod (this uid, not an earlier Pod of its name): what the
        kubelet says that the Pod's status does not (runtime/podevents.py)."""
        fields = f"involvedObject.kind=Pod,involvedObject.name={name},involvedObject.uid={uid}"
        fields += f",reason={reason}"
        try:
            out = self._plain(self.core.list_namespaced_event(namespace, field_selector=fields))
        except ApiException as exc:
            raise wrap(f"list events of pod {name} in {namespace}", exc) from exc
        return list(out.get("items") or [])

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        try:
            out = self._plain(self.core.list_namespaced_pod(namespace, label_selector=selector))
        except ApiException as exc:
            raise wrap(f"list pods in {namespace}", exc) from exc
        return list(out.get("items") or [])

    def delete_pod(self, namespace: str, name: str, grace_s: int | None = None) -> bool:
        try:
            self._count("delete pods")
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_s)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise wrap(f"delete pod {name} in {namespace}", exc) from exc

    def pod_log(self, namespace: str, name: str, container: str, limit_bytes: int = 4 << 20) -> str:
        """A container's log (stdout and stderr as the kubelet keeps them); "" when there is none."""
        try:
            text = self.core.read_namespaced_pod_log(
                name, namespace, container=container, limit_bytes=limit_bytes
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # not started, or gone
                return ""
            raise wrap(f"logs of pod {name}/{container} in {namespace}", exc) from exc
        return str(text)

    # --- a Pod's Secret and NetworkPolicy (runtime/podnet.py) ------------------------------------

    def _namespaced(self, kind: str) -> tuple[Any, str]:
        if kind == "Secret":
            return self.core, "secret"
        if kind == "NetworkPolicy":
            return client.NetworkingV1Api(self.api_client), "network_policy"
        raise KubeError(f"no adapter for {kind} objects")

    def put_namespaced(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Create a Secret or NetworkPolicy, replacing one of that name (a leftover) if it exists."""
        api, what = self._namespaced(str(body["kind"]))
        name = body["metadata"]["name"]
        try:
            self._count(f"create {what}s")
            getattr(api, f"create_namespaced_{what}")(namespace, dict(body))
            return
        except ApiException as exc:
            if exc.status != 409:
                raise wrap(f"create {body['kind']} {name} in {namespace}", exc) from exc
        try:
            self._count(f"replace {what}s")
            getattr(api, f"replace_namespaced_{what}")(name, namespace, dict(body))
        except ApiException as exc:
            raise wrap(f"replace {body['kind']} {name} in {namespace}", exc) from exc

    def list_namespaced(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        api, what = self._namespaced(kind)
        try:
            out = self._plain(getattr(api, f"list_namespaced_{what}")(namespace, label_selector=selector))
        except ApiException as exc:
            raise wrap(f"list {kind} objects in {namespace}", exc) from exc
        return list(out.get("items") or [])

    def get_namespaced(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        api, what = self._namespaced(kind)
        try:
            return self._plain(getattr(api, f"read_namespaced_{what}")(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise wrap(f"get {kind} {name} in {namespace}", exc) from exc

    def delete_namespaced(
        self, kind: str, namespace: str, name: str, uid: str = "", version: str = ""
    ) -> bool:
        """Delete a Secret or NetworkPolicy; False when it is not there. With `uid` and `version`, only
        that object as it was read: one replaced since (a new Pod's) is kept, and False says so."""
        api, what = self._namespaced(kind)
        options = None
        if uid or version:
            options = client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=uid or None, resource_version=version or None)
            )
        try:
            self._count(f"delete {what}s")
            getattr(api, f"delete_namespaced_{what}")(name, namespace, body=options)
            return True
        except ApiException as exc:
            if exc.status == 404 or (options is not None and exc.status == 409):
                return False
            raise wrap(f"delete {kind} {name} in {namespace}", exc) from exc
