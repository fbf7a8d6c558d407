#!/bin/sh
# Export every file under /run/secrets as an environment variable of the same name, then exec the
# command. The runtime mounts the secrets there read-only, so they never appear in `podman inspect`.
set -eu
if [ -d /run/secrets ]; then
    for f in /run/secrets/*; do
        [ -f "$f" ] || continue
        name=$(basename "$f")
        value=$(cat "$f")
        export "$name=$value"
    done
fi
exec "$@"
