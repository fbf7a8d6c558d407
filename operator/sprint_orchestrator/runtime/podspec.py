"""Pod manifests for task and one-shot runs, and the verdict on a finished Pod: pure functions.

A Pod has no disk shared with the operator. One container, `main`, does the whole run under a small
shell wrapper: it downloads the prepared workspace (a tar stream from the operator's transfer endpoint,
`transfer.py`) into an emptyDir mounted at /workspace, and each read-only mount into its own emptyDir,
then runs the command. A task's wrapper, once the command has exited, tars /workspace and /artifacts and
PUTs them to the endpoint, then exits with the command's exit code; a one-shot's (gate's) wrapper
`exec`s the command, so nothing of the wrapper or its transfer URL is left in the process the gate runs.

Why one container and not an init container for the download: a container start costs the kubelet about
1.4 s here (measured: a task Pod 1.85 s -> 3.23 s with a `fetch` init container, median of 8), twice per
task (the task and its gate). What the init container gave, and how it holds without it:
- the command never sees the transfer URL: the wrapper unsets it before the command runs (a one-shot
  `exec`s it away); the URL's grant answers each GET once, so after the download it fetches nothing more,
  and a one-shot's grant takes no upload;
- "the download failed" is decided by the operator, not by the Pod: the endpoint records each tree it
  sent whole (`Grant.sent`) and a Pod that ended without its whole workspace is reported as such, whatever
  its exit code says (`pods.py`), so the code a gate judges cannot pass off its failure as a lost download;
- the read-only mounts are read-only at their target; the same emptyDir is writable at /so-mount/<i> only
  so the wrapper can fill it. It is the Pod's own copy, never read back: what the agent does to it stays in
  its Pod (as anything else it does there).

Why a wrapper and not a sidecar for the upload: the upload must happen after the agent is done and
before the Pod ends; the wrapper is one process in the same container with no extra image, no shared
"done" file and no native-sidecar feature gate. It gives the Pod nothing it could abuse: the agent can
kill or mimic the wrapper, but all that reaches the operator is one tar stream of its own workspace,
which the operator checks member by member (`safetar`).

Every container runs at the restricted Pod Security level: a non-root UID, no privilege escalation, all
capabilities dropped, the RuntimeDefault seccomp profile, a read-only root with an emptyDir /tmp. No
service-account token, no service links, restartPolicy Never, activeDeadlineSeconds from the timeout,
requests equal to limits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import ANYWHERE, Limits, Scheduling, podnet

AGENT_UID = 1000
TMP_LIMIT = "1Gi"
TRANSFER_ENV = "SO_TRANSFER"

# Works with busybox (wget) and with the Debian base image (python3, no wget): the workspace and each
# read-only mount (/so-mount/<i>, as many as exist) are downloaded first, by one python3 process when
# there is no wget (a python3 start costs as much as the download), then unpacked.
_GET_ALL = (
    "if command -v wget >/dev/null 2>&1; then k=0; for p in $names; do wget -q -O /tmp/.so-in-$k.tar "
    f'"${TRANSFER_ENV}/$p"; k=$((k+1)); done; else python3 -c '
    "'import sys,shutil,urllib.request as u\n"
    "for k,p in enumerate(sys.argv[2:]):\n"
    ' f=open("/tmp/.so-in-%d.tar"%k,"wb")\n'
    ' shutil.copyfileobj(u.urlopen(sys.argv[1]+"/"+p),f);f.close()\''
    f' "${TRANSFER_ENV}" $names; fi'
)
FETCH_SCRIPT = (
    "set -e; n=0; names=workspace; "
    'while [ -d /so-mount/$n ]; do names="$names mount/$n"; n=$((n+1)); done; '
    f"{_GET_ALL}; tar -x -f /tmp/.so-in-0.tar -C /workspace; i=0; while [ $i -lt $n ]; do "
    "tar -x -f /tmp/.so-in-$((i+1)).tar -C /so-mount/$i; i=$((i+1)); done; rm -f /tmp/.so-in-*.tar"
)
FETCH_FAILED = "fetching the workspace failed (the Pod ended before it had all of it)"
FETCH_FAILED_EXIT = 125  # what the wrapper exits with when the download failed (the log says why)
POLICY_FAILED_EXIT = 126  # ... when the Pod's NetworkPolicy did not take hold in time (canary.py)
CANARY_ENV, POLICY_WAIT_ENV = "SO_CANARY", "SO_POLICY_WAIT"
# Until the canary (host:port, left out of every Pod's policy) stops answering, for at most
# $SO_POLICY_WAIT seconds: 0 once the policy holds, 1 when it never did. One python3 process polls
# (0.1 s apart, each try up to 0.5 s); without python3, busybox nc (whole seconds). No canary: 0.
_POLICY_WAIT = (
    f'[ -n "${CANARY_ENV}" ] || exit 0; if command -v python3 >/dev/null 2>&1; then '
    "exec python3 -c 'import socket,sys,time\n"
    'h,p=sys.argv[1].rsplit(":",1);end=time.monotonic()+float(sys.argv[2])\n'
    "while time.monotonic()<end:\n"
    " try: socket.create_connection((h,int(p)),0.5).close()\n"
    " except OSError: sys.exit(0)\n"
    " time.sleep(0.1)\n"
    f'sys.exit(1)\' "${CANARY_ENV}" "${POLICY_WAIT_ENV}"; fi; '
    f'n=0; while nc -w 1 "${{{CANARY_ENV}%:*}}" "${{{CANARY_ENV}##*:}}" </dev/null >/dev/null 2>&1; do '
    f'n=$((n+1)); [ $n -le "${POLICY_WAIT_ENV}" ] || exit 1; sleep 1; done'
)
# The policy wait runs beside the download; the command starts once both are done. Statements of their
# own, not `( ... ) || ...`: in an AND-OR list the subshell's `set -e` is ignored.
FETCH_STEP = (
    f"( {_POLICY_WAIT} ) & so_pw=$!; ( {FETCH_SCRIPT} ); so_f=$?; wait $so_pw; so_p=$?; "
    "if [ $so_f -ne 0 ]; then echo 'sprint-orchestrator: fetching the workspace failed' "
    f">&2; exit {FETCH_FAILED_EXIT}; fi; "
    "if [ $so_p -ne 0 ]; then echo \"sprint-orchestrator: the Pod's NetworkPolicy did not take hold in "
    f'${POLICY_WAIT_ENV} s (the canary ${CANARY_ENV} still answers): the command was not run" >&2; '
    f"exit {POLICY_FAILED_EXIT}; fi; unset {CANARY_ENV} {POLICY_WAIT_ENV}; "
)
ONESHOT_SCRIPT = f'{FETCH_STEP}unset {TRANSFER_ENV}; exec "$@"'
# A warm one-shot Pod (podpool.py): started before its work exists, it waits for its NetworkPolicy, then
# asks the endpoint for its work (GET .../claim, held by the endpoint, 204 until a run is assigned, then
# 200 with the shell command), fetches the workspace as any one-shot does and `exec`s `/bin/sh -c` with
# the command: the command starts in a Pod already running, and still never sees the transfer URL.
# (busybox 1.35's wget crashes on a 204 with -T: the endpoint's own hold bounds each request.)
_CLAIM = (
    "if command -v python3 >/dev/null 2>&1; then python3 -c 'import sys,urllib.request as u\n"
    "while True:\n"
    ' r=u.urlopen(sys.argv[1]+"/claim",timeout=90);b=r.read()\n'
    " if r.status==200:\n"
    '  open("/tmp/.so-cmd","wb").write(b);break\''
    f' "${TRANSFER_ENV}"; else while :; do rm -f /tmp/.so-cmd; '
    f'wget -q -O /tmp/.so-cmd "${TRANSFER_ENV}/claim" || exit 1; [ -s /tmp/.so-cmd ] && break; done; fi'
)
CLAIM_FAILED_EXIT = 124  # the wrapper of a warm Pod lost the endpoint before any work came
POOL_SCRIPT = (
    f"( {_POLICY_WAIT} ); so_p=$?; if [ $so_p -ne 0 ]; then echo \"sprint-orchestrator: the Pod's "
    f"NetworkPolicy did not take hold in ${POLICY_WAIT_ENV} s (the canary ${CANARY_ENV} still answers): "
    f'no command was run" >&2; exit {POLICY_FAILED_EXIT}; fi; unset {CANARY_ENV} {POLICY_WAIT_ENV}; '
    f"( {_CLAIM} ); so_c=$?; if [ $so_c -ne 0 ]; then echo 'sprint-orchestrator: the endpoint went away "
    f"before any work came' >&2; exit {CLAIM_FAILED_EXIT}; fi; "
    f"( {FETCH_SCRIPT} ); so_f=$?; if [ $so_f -ne 0 ]; then echo 'sprint-orchestrator: fetching the "
    f"workspace failed' >&2; exit {FETCH_FAILED_EXIT}; fi; "
    f'so_cmd=$(cat /tmp/.so-cmd); rm -f /tmp/.so-cmd; unset {TRANSFER_ENV}; exec /bin/sh -c "$so_cmd"'
)
# busybox wget posts a file as text (up to its first NUL byte): without python3, PUT through nc.
# so_put NAME DIR [QUERY]: the last upload carries the command's exit (`?exit=$rc`, transfer.py).
# so_put returns 1 when the endpoint answered anything but 200 (a refusal is final) and 2 when nothing
# answered (the operator restarting): so_send retries only the latter (UPLOAD_RETRIES times), so a
# restarted operator that adopted the Pod still gets its result.
UPLOAD_RETRIES, UPLOAD_PAUSE_S = 120, 5
_PUT = (
    'f=/tmp/.so-$1.tar; tar -c -f $f -C "$2" . || return 1; if command -v python3 >/dev/null 2>&1; then '
    "python3 -c 'import os,sys,urllib.error as e,urllib.request as u\n"
    'try:\n f=open(sys.argv[2],"rb");u.urlopen(u.Request(sys.argv[1],data=f,method="PUT",'
    'headers={"Content-Length":str(os.fstat(f.fileno()).st_size)}))\n'
    "except e.HTTPError: sys.exit(1)\nexcept OSError: sys.exit(2)'"
    ' "$so_url/result/$1$3" $f || return $?; else hp=${so_url#http://}; path=/${hp#*/}/result/$1$3; '
    "hp=${hp%%/*}; r=$({ printf 'PUT %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Length: %s\\r\\n\\r\\n' "
    '"$path" "$hp" $(($(wc -c < $f))); cat $f; } | nc -w 30 "${hp%:*}" "${hp##*:}" | head -n 1); '
    '[ -n "$r" ] || return 2; case "$r" in *" 200 "*) ;; *) return 1;; esac; fi; rm -f $f'
)
_SEND = (
    f'n=0; while :; do so_put "$1" "$2" "$3"; r=$?; '
    f"[ $r -eq 2 ] && [ $n -lt {UPLOAD_RETRIES} ] || return $r; "
    f"n=$((n+1)); sleep {UPLOAD_PAUSE_S}; done"
)
WRAP_SCRIPT = (
    f'so_url="${TRANSFER_ENV}"; unset {TRANSFER_ENV}; "$@"; rc=$?; cd /; '
    f"so_put() {{ {_PUT}; }}; so_send() {{ {_SEND}; }}; "
    'so_send workspace /workspace || echo "sprint-orchestrator: the workspace upload failed" >&2; '
    'so_send artifacts /artifacts "?exit=$rc" || '
    'echo "sprint-orchestrator: the artifacts upload failed" >&2; '
    "exit $rc"
)


@dataclass(frozen=True)
class PodRun:
    name: str
    namespace: str
    image: str
    command: Sequence[str]
    transfer_url: str
    labels: Mapping[str, str]
    limits: Limits
    timeout_s: float
    environment: Mapping[str, str]
    upload: bool  # a task (uploads its result) or a one-shot (does not)
    pull_policy: str = "IfNotPresent"
    mounts: Sequence[str] = ()  # targets of read-only directories fetched like the workspace
    secret: str = ""  # the attempt's Secret (podnet.py); its keys become the main container's env
    secret_keys: Sequence[str] = ()
    owners: Sequence[Mapping[str, Any]] = ()  # ownerReferences (the Task)
    scheduling: Scheduling = ANYWHERE
    canary: str = ""  # host:port left out of the Pod's policy: the command waits until it is unreachable
    policy_wait_s: float = 60
    host_aliases: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)  # address -> names
    tmp_limit: str = TMP_LIMIT  # /tmp, where the wrapper spools its uploads
    pull_secret: str = ""  # containers.image_pull_secret: the Secret the node pulls the image with
    pooled: bool = False  # a warm one-shot Pod: its command comes over its claim (POOL_SCRIPT)


def resources(limits: Limits) -> dict[str, Any]:
    """requests = limits (Guaranteed QoS); None means no limit of that kind."""
    values: dict[str, str] = {}
    if limits.memory_bytes:
        values["memory"] = str(limits.memory_bytes)
    if limits.cpus:
        values["cpu"] = f"{max(1, math.ceil(limits.cpus * 1000))}m"
    return {"limits": dict(values), "requests": dict(values)} if values else {}


def _security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": AGENT_UID,
        "runAsGroup": AGENT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def manifest(run: PodRun) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"name": "workspace", "mountPath": "/workspace"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {"sizeLimit": run.tmp_limit}},
    ]
    env = [{"name": k, "value": v} for k, v in sorted({**run.environment, "HOME": "/tmp"}.items())]
    transfer = {"name": TRANSFER_ENV, "value": run.transfer_url}
    volumes += [{"name": f"mount-{i}", "emptyDir": {}} for i in range(len(run.mounts))]
    mounts += [{"name": f"mount-{i}", "mountPath": f"/so-mount/{i}"} for i in range(len(run.mounts))]
    mounts += [
        {"name": f"mount-{i}", "mountPath": target, "readOnly": True} for i, target in enumerate(run.mounts)
    ]
    if run.upload:
        mounts.append({"name": "artifacts", "mountPath": "/artifacts"})
        volumes.append({"name": "artifacts", "emptyDir": {}})
        command = ["/bin/sh", "-c", FETCH_STEP + WRAP_SCRIPT, "sh", *run.command]
    elif run.pooled:
        command = ["/bin/sh", "-c", POOL_SCRIPT]
    else:
        command = ["/bin/sh", "-c", ONESHOT_SCRIPT, "sh", *run.command]
    env.append(transfer)
    if run.canary:
        env.append({"name": CANARY_ENV, "value": run.canary})
        env.append({"name": POLICY_WAIT_ENV, "value": str(max(1, math.ceil(run.policy_wait_s)))})
    main = {
        "name": "main",
        "image": run.image,
        "imagePullPolicy": run.pull_policy,
        "command": command,
        "workingDir": "/workspace",
        "env": env + podnet.secret_env(run.secret, run.secret_keys) if run.secret else env,
        "volumeMounts": mounts,
        "resources": resources(run.limits),
        "securityContext": _security(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": run.name,
            "namespace": run.namespace,
            "labels": dict(run.labels),
            **({"ownerReferences": [dict(o) for o in run.owners]} if run.owners else {}),
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(1, math.ceil(run.timeout_s)),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": AGENT_UID,
                "runAsGroup": AGENT_UID,
                "fsGroup": AGENT_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [main],
            "volumes": volumes,
            **placement(run.scheduling),
            **_aliases(run.host_aliases),
            **({"imagePullSecrets": [{"name": run.pull_secret}]} if run.pull_secret else {}),
        },
    }


def placement(scheduling: Scheduling) -> dict[str, Any]:
    """The Pod spec fields of the sprint's scheduling choices (only those it set)."""
    fields: dict[str, Any] = {
        "runtimeClassName": scheduling.runtime_class_name,
        "nodeSelector": dict(scheduling.node_selector) or None,
        "tolerations": [dict(t) for t in scheduling.tolerations] or None,
        "priorityClassName": scheduling.priority_class_name,
    }
    return {key: value for key, value in fields.items() if value}


def _aliases(aliases: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """`hostAliases`: names the Pod resolves without DNS (a build Pod's package sources)."""
    entries = [{"ip": ip, "hostnames": list(names)} for ip, names in sorted(aliases.items()) if names]
    return {"hostAliases": entries} if entries else {}
