#!/usr/bin/env bash
# hack/demo.sh --in-cluster: the demo with the operator installed IN the cluster by Helm, task Pods on
# two real nodes (containers.runtime: pods), nothing on the host but the cluster itself and a
# `git daemon` serving the target repository on the host's node-bridge address.
#   bash hack/demo.sh --in-cluster     # run it
#   bash hack/demo.sh --down           # stop everything it started (the git daemon too)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
demo="$repo/.demo"
export PATH="$repo/hack/bin:$repo/.venv/bin:$PATH"
export CONTAINERS_CONF="$repo/hack/containers.conf"
export KUBECONFIG="$demo/cluster/kubeconfig"
sprint="${SPRINT:-examples/sprint.yaml}"
ns=sprint-orchestrator

bash "$here/setup.sh"
bash "$here/demo.sh" --down >/dev/null
mkdir -p "$demo"

echo "==> local Kubernetes cluster with 2 nodes and a registry" >&2
"$here/cluster" up --state-dir "$demo/cluster" --nodes 2
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$demo/cluster/state.json" "$1"; }
registry=$(state registry)
host=${registry%:*}
api=$(state server)                      # https://10.96.<slot>.1:443
api=${api#https://}
transfer_ip="${api%.*}.10"               # in the Service range's static band (no cluster DNS here)

echo "==> the operator image, pushed to $registry" >&2
image=$(bash "$here/operator-image.sh")
ref=$("$here/cluster" push "$image" --state-dir "$demo/cluster")

echo "==> the target repository, served by git daemon on git://$host:9418" >&2
bash "$here/example-repo.sh" "$demo/git/textstats.git" >/dev/null
setsid git daemon --reuseaddr --listen="$host" --port=9418 --export-all --enable=receive-pack \
  --base-path="$demo/git" "$demo/git" > "$demo/git-daemon.log" 2>&1 < /dev/null &
echo $! > "$demo/git-daemon.pid"

echo "==> helm install (namespace $ns, restricted Pod Security)" >&2
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
helm install so "$repo/helm/sprint-orchestrator" -n "$ns" \
  --set image.repository="${ref%:*}" --set image.tag="${ref##*:}" \
  --set persistence.enabled=false \
  --set tasks.registryPlainHTTP=true \
  --set tasks.transfer.address="$transfer_ip" --set tasks.transfer.service.clusterIP="$transfer_ip" \
  --set config.git.repository_url="git://$host:9418/textstats.git" \
  --set "networkPolicy.extraEgressPorts[0].port=${registry##*:}" >/dev/null
kubectl -n "$ns" rollout status deployment/so-sprint-orchestrator --timeout=600s

name=$(python3 -c "import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))['metadata']['name'])" "$repo/$sprint")
echo "==> kubectl apply -f $sprint" >&2
(cd "$repo" && kubectl apply -f "$sprint")
sprintctl status "$name" --watch --timeout "${DEMO_TIMEOUT:-1800}"
echo
kubectl get sprints,tasks.sprintorchestrator.dev
echo
kubectl -n "$ns" get events --field-selector reason=Scheduled -o custom-columns=POD:.involvedObject.name,WHERE:.message | tail -20
echo
echo "main of the target repository ($demo/git/textstats.git):"
git -C "$demo/git/textstats.git" log --oneline --graph main | head -30
cat <<MSG

The cluster, the operator (in it) and the git daemon are still running. Try:
  export KUBECONFIG=$KUBECONFIG PATH=$repo/hack/bin:\$PATH
  kubectl get spr,stask; kubectl -n $ns get pods -o wide; kubectl -n $ns logs deploy/so-sprint-orchestrator
  bash hack/demo.sh --down     # to stop everything
MSG
