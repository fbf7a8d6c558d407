#!/usr/bin/env bash
# The demo: the local control plane, the CRDs, the operator, and examples/sprint.yaml run to completion
# by the demo team in real Podman containers, with live progress and the sprint report at the end.
#   bash hack/demo.sh            # run it (installs what is missing first)
#   bash hack/demo.sh --down     # stop the operator and the control plane, remove the demo's state
#   NODES=2 bash hack/demo.sh    # the same cluster with real nodes (hack/cluster up --nodes 2)
#   bash hack/demo.sh --in-cluster   # the operator installed in the cluster by Helm, tasks as Pods on 2 nodes
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
demo="$repo/.demo"
export PATH="$repo/hack/bin:$repo/.venv/bin:$PATH"
export CONTAINERS_CONF="$repo/hack/containers.conf"
export KUBECONFIG="$demo/cluster/kubeconfig"
sprint="${SPRINT:-examples/sprint.yaml}"

# Stop what the demo started, by the PIDs it recorded and the paths it owns (never a broad kill):
# the operator's process group (setsid made it the leader: its children go with it), then anything
# still running with a path under .demo/ in its command line (the operator's podman service), then
# the control plane. Waits for each to exit, and says so if something survives.
stop_pid_group() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
demo_processes() { pgrep -f -- "$demo/" 2>/dev/null | grep -vx "$$" || true; }
stop() {
  if [ -f "$demo/operator.pid" ]; then stop_pid_group "$(cat "$demo/operator.pid")"; rm -f "$demo/operator.pid"; fi
  local pid
  for pid in $(demo_processes); do stop_pid_group "$pid"; done
  "$here/cluster" down --state-dir "$demo/cluster" >/dev/null 2>&1 || true
  local left
  left=$(demo_processes)
  if [ -n "$left" ]; then
    echo "demo: still running after stop: $(ps -o pid=,args= -p $(echo $left | tr ' ' ,) 2>/dev/null)" >&2
    return 1
  fi
}
if [ "${1:-}" = "--down" ]; then stop; rm -rf "$demo"; echo "demo stopped (nothing it started is running)"; exit 0; fi
if [ "${1:-}" = "--in-cluster" ]; then exec bash "$here/demo-incluster.sh"; fi

bash "$here/setup.sh"
stop
rm -rf "$demo"
mkdir -p "$demo"

echo "==> local Kubernetes control plane" >&2
"$here/cluster" up --state-dir "$demo/cluster" ${NODES:+--nodes "$NODES"}
kubectl apply --server-side -f "$repo/crds" >/dev/null
# Polled: right after the apply a CRD may have no status yet, which `kubectl wait` reports as an error.
established() {
  [ "$(kubectl get "crd/$1.sprintorchestrator.dev" \
    -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]
}
for crd in sprints tasks; do
  for _ in $(seq 300); do established "$crd" && break; sleep 0.2; done
  established "$crd" || { echo "crd/$crd.sprintorchestrator.dev is not Established after 60 s" >&2; exit 1; }
done

echo "==> the target repository (examples/textstats, pushed to a fresh bare repository)" >&2
bash "$here/example-repo.sh" "$demo/textstats.git" >/dev/null

cat > "$demo/config.yaml" <<YAML
orchestrator:
  max_concurrent_sprints: 1
  max_parallel_tasks_per_sprint: 5
  default_task_timeout: 600s
  default_token_budget: 1000000
git:
  repository_url: '$demo/textstats.git'
  main_branch: main
  working_trees_path: '$demo/trees'
containers:
  runtime: podman  # base_image unset: the base image for the demo team, the agent image for agent CLIs
  network_mode: none
  cleanup_on_completion: true
YAML

echo "==> the operator (log: .demo/operator.log)" >&2
# setsid: the operator leads its own process group; $! is its own PID (exec, no wrapping shell).
cd "$repo"
SPRINT_ORCHESTRATOR_CONFIG="$demo/config.yaml" SPRINT_ORCHESTRATOR_STATE_DIR="$demo/state" \
  setsid sprintctl operator --log-format json > "$demo/operator.log" 2>&1 < /dev/null &
echo $! > "$demo/operator.pid"

name=$(python3 -c "import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))['metadata']['name'])" "$repo/$sprint")
echo "==> kubectl apply -f $sprint" >&2
(cd "$repo" && kubectl apply -f "$sprint")
sprintctl status "$name" --watch --timeout "${DEMO_TIMEOUT:-900}"
echo
kubectl get sprints,tasks.sprintorchestrator.dev
echo
sprintctl report "$name" || true
echo
echo "main of the target repository ($demo/textstats.git):"
git -C "$demo/textstats.git" log --oneline --graph main | head -30
cat <<MSG

The control plane and the operator are still running. Try:
  export KUBECONFIG=$KUBECONFIG PATH=$repo/hack/bin:\$PATH
  kubectl get spr,stask; kubectl describe sprint $name
  bash hack/demo.sh --down     # to stop everything
MSG
