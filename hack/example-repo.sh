#!/usr/bin/env bash
# hack/example-repo.sh DEST — the sample target repository (examples/textstats) as a fresh bare git
# repository at DEST, its main holding one commit. The demo and the README's "Using it" start from it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: hack/example-repo.sh DEST (a path for the new bare repository)}
[ ! -e "$dest" ] || { echo "example-repo: $dest already exists; remove it or pick another path" >&2; exit 1; }
seed=$(mktemp -d)
trap 'rm -rf "$seed"' EXIT
cp -r "$here/../examples/textstats/." "$seed/"
git -C "$seed" init -q -b main
git -C "$seed" add -A
git -C "$seed" -c user.name=Demo -c user.email=demo@example.com commit -qm "textstats: initial commit"
mkdir -p "$(dirname "$dest")"
git init -q --bare -b main "$dest"
git -C "$seed" push -q "$dest" main
echo "example-repo: $dest (main at $(git -C "$dest" rev-parse --short main))"
