#!/usr/bin/env bash
# hack/agent-image.sh — build the agent task image: the local base image plus Node.js (Debian's package),
# the pinned real agent CLIs from npm and the in-container LLM forwarder of the metering proxy.
# Skipped when the image exists and carries the hash of this script, the forwarder and the base image id.
# Env: AGENT_IMAGE (tag), BASE_IMAGE (tag), FORCE=1 (rebuild). Prints the tag on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
tag="${AGENT_IMAGE:-localhost/sprint-orchestrator/agent:bookworm}"
base="${BASE_IMAGE:-localhost/sprint-orchestrator/base:bookworm}"
forwarder="$root/operator/sprint_orchestrator/proxy/files/forwarder.py"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator/agent"
label="sprintorchestrator.dev/agent-hash"

# Pinned CLI versions: bump deliberately, together with the transcripts the usage tests keep.
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.169.0
GEMINI_CLI_VERSION=0.61.0

log() { echo "agent-image: $*" >&2; }

base_id=$(podman image inspect "$base" --format '{{.Id}}' 2>/dev/null || true)
if [ -z "$base_id" ]; then
    log "base image $base is missing: run hack/base-image.sh first"
    exit 1
fi
hash=$(cat "$0" "$forwarder" <(echo "$base_id") | sha256sum | cut -c1-16)
current=$(podman image inspect "$tag" --format "{{index .Labels \"$label\"}}" 2>/dev/null || true)
if [ "${FORCE:-0}" != 1 ] && [ "$current" = "$hash" ]; then
    log "$tag is up to date (hash $hash)"
    echo "$tag"
    exit 0
fi

mkdir -p "$cache"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$forwarder" "$ctx/forwarder.py"
cat >"$ctx/gemini-settings.json" <<'JSON'
{"telemetry": {"enabled": false}, "privacy": {"usageStatisticsEnabled": false},
 "general": {"disableAutoUpdate": true, "disableUpdateNag": true}}
JSON
cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $base
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nodejs npm ripgrep \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
RUN npm install --global --no-audit --no-fund --loglevel=error \\
      @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION \\
      @openai/codex@$CODEX_VERSION \\
      @google/gemini-cli@$GEMINI_CLI_VERSION \\
 && npm cache clean --force && rm -rf /root/.npm
COPY forwarder.py /usr/local/bin/sprint-llm-forwarder
COPY gemini-settings.json /etc/gemini-cli/settings.json
RUN chmod 0755 /usr/local/bin/sprint-llm-forwarder && chmod 0644 /etc/gemini-cli/settings.json
# Background traffic off: no telemetry, error reports, update checks or auto-updates in any CLI.
ENV CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 \\
    DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY=1 \\
    GEMINI_TELEMETRY_ENABLED=false GEMINI_CLI_DISABLE_AUTO_UPDATE=true \\
    CODEX_DISABLE_UPDATE_CHECK=1 NO_UPDATE_NOTIFIER=1 NPM_CONFIG_UPDATE_NOTIFIER=false
LABEL $label="$hash" \\
      sprintorchestrator.dev/claude-code="$CLAUDE_CODE_VERSION" \\
      sprintorchestrator.dev/codex="$CODEX_VERSION" \\
      sprintorchestrator.dev/gemini-cli="$GEMINI_CLI_VERSION"
CONTAINERFILE
log "building $tag (nodejs, claude-code $CLAUDE_CODE_VERSION, codex $CODEX_VERSION, gemini-cli $GEMINI_CLI_VERSION)"
podman build --network host --layers=false -t "$tag" -f "$ctx/Containerfile" "$ctx" >"$cache/build.log" 2>&1 \
    || { tail -n 20 "$cache/build.log" >&2; log "podman build failed; full log: $cache/build.log"; exit 1; }
log "built $tag (hash $hash)"
echo "$tag"
