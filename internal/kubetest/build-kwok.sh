#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok, which simulates nodes and their pods
# against a real API server) from the Go module proxy into a cache
# directory, outside the project's go.mod, and copies its stage definitions
# (node and pod lifecycles) from the module next to it. About 80 s cold on
# 2 cores; a second run finds the stamp and does nothing. Only `make
# bench-scale` needs it.
#
#   internal/kubetest/build-kwok.sh [DIR]    (default: $GLOVEBOX_KWOK_DIR or /var/cache/glovebox/kwok-v0.8.0)
set -euo pipefail
KWOK=v0.8.0
dir=${1:-${GLOVEBOX_KWOK_DIR:-/var/cache/glovebox/kwok-$KWOK}}
stamp="$dir/bin/.stamp"
want="kwok $KWOK"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
echo "building kwok $KWOK into $dir/bin: about a minute or two, once"
mkdir -p "$dir/bin" "$dir/stage"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Outside any module, so the project's go.mod and go.sum are untouched.
cd "$work"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOBIN="$dir/bin"
go install -trimpath -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok@$KWOK
src=$(go mod download -json sigs.k8s.io/kwok@$KWOK | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$src/kustomize/stage/." "$dir/stage/"
chmod -R u+w "$dir/stage"
echo "$want" > "$stamp"
echo "built: $dir/bin/kwok, stages in $dir/stage"
