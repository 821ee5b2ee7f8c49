#!/usr/bin/env bash
# Builds a real kube-apiserver and kubectl from the Go module proxy's
# k8s.io/kubernetes source and prints the directory holding both. Cached under
# ~/.cache: the first build takes ~11 minutes on 2 cores, later calls return
# at once.
#
# The k8s.io/kubernetes module zip has no staging/ folders, so its
# `k8s.io/x => ./staging/src/k8s.io/x` replace lines cannot resolve: the
# source is copied, go.work is removed, and each of those lines is rewritten
# to the published module at the matching version (v1.34.4 → v0.34.4).
#
# KUBE_VERSION picks the release (default v1.34.4).
set -euo pipefail

version="${KUBE_VERSION:-v1.34.4}"
staging_version="v0.${version#v1.}"
cache="${SOCKETIOGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/socketioguard}"
dir="$cache/kube-$version"

if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/kubectl" ] && "$dir/kube-apiserver" --version 2>/dev/null | grep -q "Kubernetes $version\$"; then
	echo "$dir"
	exit 0
fi

echo "building kube-apiserver and kubectl $version into $dir (first time only, takes ~11 minutes)" >&2
mkdir -p "$dir"
mod_json=$(cd "$dir" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "k8s.io/kubernetes@$version")
upstream_dir=$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$upstream_dir" ] || { echo "could not download k8s.io/kubernetes@$version" >&2; exit 1; }

rm -rf "$dir/src" && cp -r "$upstream_dir" "$dir/src" && chmod -R u+w "$dir/src"
rm -f "$dir/src/go.work" "$dir/src/go.work.sum"
sed -i -E "s#^([[:space:]]*)(k8s\.io/[a-z0-9./-]+) => \./staging/src/k8s\.io/[a-z0-9./-]+\$#\1\2 => \2 $staging_version#" "$dir/src/go.mod"
if grep -q '=> ./staging' "$dir/src/go.mod"; then
	echo "go.mod still has staging replaces:" >&2
	grep '=> ./staging' "$dir/src/go.mod" >&2
	exit 1
fi
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version"
for cmd in kube-apiserver kubectl; do
	(cd "$dir/src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
		go build -trimpath -ldflags "$ldflags" -o "$dir/$cmd.tmp" "./cmd/$cmd")
	mv "$dir/$cmd.tmp" "$dir/$cmd"
done
rm -rf "$dir/src"
"$dir/kube-apiserver" --version >&2
echo "$dir"
