#!/usr/bin/env bash
# Builds the Kubernetes test cluster's binaries from the Go module proxy into
# a cache directory (../shared/notes/kubernetes.md): kube-apiserver,
# kube-scheduler, kube-controller-manager and kubelet from k8s.io/kubernetes,
# and etcd from go.etcd.io/etcd/server/v3. Cold it takes several minutes and
# a few GB of Go build cache on 2 cores; a second run finds the stamp and
# does nothing.
#
#   internal/kubetest/build.sh [DIR]    (default: $GLOVEBOX_KUBE_DIR or /var/cache/glovebox/kube-v1.37.2)
set -euo pipefail
K8S=v1.37.2 STAGING=v0.37.2 ETCD=v3.7.3
dir=${1:-${GLOVEBOX_KUBE_DIR:-/var/cache/glovebox/kube-$K8S}}
stamp="$dir/bin/.stamp"
want="kubernetes $K8S etcd $ETCD"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
echo "building the Kubernetes test cluster ($want) into $dir/bin: several minutes, once"
mkdir -p "$dir/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

# kubernetes: a throwaway module requiring k8s.io/kubernetes, with every
# staging module replaced by its release (k8s.io/kubernetes's own replaces
# point into its repository and do not apply to a dependent).
mkdir "$work/k8s"
cd "$work/k8s"
printf 'module glovebox-kube-build\n\ngo 1.26\n' > go.mod
printf '//go:build tools\n\npackage build\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
go mod download -json k8s.io/kubernetes@$K8S > mod.json
modfile=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' mod.json)
for m in $(sed -nE 's#^\s*(k8s.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$modfile"); do
	echo "replace $m => $m $STAGING" >> go.mod
done
go mod edit -require=k8s.io/kubernetes@$K8S
go mod tidy
ver="-X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
go build -trimpath -ldflags "-s -w $ver" -o "$dir/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubelet

# etcd, in a module of its own (its dependencies' versions are not
# Kubernetes's).
mkdir "$work/etcd"
cd "$work/etcd"
printf 'module glovebox-etcd-build\n\ngo 1.26\n' > go.mod
printf '//go:build tools\n\npackage build\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go get go.etcd.io/etcd/server/v3@$ETCD
go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" go.etcd.io/etcd/server/v3

echo "$want" > "$stamp"
echo "built: $(ls "$dir/bin" | tr '\n' ' ')"
