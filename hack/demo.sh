#!/usr/bin/env bash
# The demo: the local control plane, the CRDs, the operator, and examples/sprint.yaml run to completion
# by the demo team in real Podman containers, with live progress and the sprint report at the end.
#   bash hack/demo.sh            # run it (installs what is missing first)
#   bash hack/demo.sh --down     # stop the operator and the control plane, remove the demo's state
#   NODES=2 bash hack/demo.sh    # the same cluster with real nodes (hack/cluster up --nodes 2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
demo="$repo/.demo"
export PATH="$repo/hack/bin:$repo/.venv/bin:$PATH"
export CONTAINERS_CONF="$repo/hack/containers.conf"
export KUBECONFIG="$demo/cluster/kubeconfig"
sprint="${SPRINT:-examples/sprint.yaml}"

stop() {
  if [ -f "$demo/operator.pid" ]; then kill "$(cat "$demo/operator.pid")" 2>/dev/null || true; rm -f "$demo/operator.pid"; fi
  "$here/cluster" down --state-dir "$demo/cluster" >/dev/null 2>&1 || true
}
if [ "${1:-}" = "--down" ]; then stop; rm -rf "$demo"; echo "demo stopped"; exit 0; fi

bash "$here/setup.sh"
stop
rm -rf "$demo"
mkdir -p "$demo"

echo "==> local Kubernetes control plane" >&2
"$here/cluster" up --state-dir "$demo/cluster" ${NODES:+--nodes "$NODES"}
kubectl apply --server-side -f "$repo/crds" >/dev/null
kubectl wait --for=condition=Established crd/sprints.sprintorchestrator.dev crd/tasks.sprintorchestrator.dev --timeout=60s >/dev/null

echo "==> the target repository (examples/textstats, pushed to a fresh bare repository)" >&2
cp -r "$repo/examples/textstats" "$demo/seed"
git -C "$demo/seed" init -q -b main
git -C "$demo/seed" add -A
git -C "$demo/seed" -c user.name=Demo -c user.email=demo@example.com commit -qm "textstats: initial commit"
git init -q --bare -b main "$demo/textstats.git"
git -C "$demo/seed" push -q "$demo/textstats.git" main
rm -rf "$demo/seed"

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
  runtime: podman
  base_image: localhost/sprint-orchestrator/base:bookworm
  network_mode: none
  cleanup_on_completion: true
YAML

echo "==> the operator (log: .demo/operator.log)" >&2
(cd "$repo" && SPRINT_ORCHESTRATOR_CONFIG="$demo/config.yaml" SPRINT_ORCHESTRATOR_STATE_DIR="$demo/state" \
  nohup sprintctl operator --log-format json > "$demo/operator.log" 2>&1 & echo $! > "$demo/operator.pid")

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
