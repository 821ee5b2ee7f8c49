#!/usr/bin/env bash
# Builds Docker Compose v2 (the `docker compose` CLI plugin) from its module
# source on the Go module proxy and prints the directory to use as
# DOCKER_CONFIG (it holds cli-plugins/docker-compose). Cached under ~/.cache.
#
# Why not Debian's docker-compose: it is Compose 1.29, which refuses the demo
# file's top-level `name:`. Why not `go install …/cmd@version`: Compose's
# go.mod has exclude directives, which `go install` refuses outside the main
# module; building the downloaded source as the main module works.
#
# COMPOSE_VERSION picks the release (default v2.40.3).
set -euo pipefail

version="${COMPOSE_VERSION:-v2.40.3}"
module="github.com/docker/compose/v2"
cache="${SOCKETIOGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/socketioguard}"
dir="$cache/compose-$version"
plugin="$dir/cli-plugins/docker-compose"

if [ -x "$plugin" ] && "$plugin" version 2>/dev/null | grep -q "version $version\$"; then
	echo "$dir"
	exit 0
fi

echo "building Docker Compose $version into $dir (first time only)" >&2
mkdir -p "$dir"
mod_json=$(cd "$dir" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$module@$version")
upstream_dir=$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$upstream_dir" ] || { echo "could not download $module@$version" >&2; exit 1; }

mkdir -p "$dir/cli-plugins"
rm -rf "$dir/src" && cp -r "$upstream_dir" "$dir/src" && chmod -R u+w "$dir/src"
rm -f "$dir/src/go.work" "$dir/src/go.work.sum"
(cd "$dir/src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
	go build -trimpath -ldflags "-s -w -X $module/internal.Version=$version" \
	-o "$plugin.tmp" ./cmd)
mv "$plugin.tmp" "$plugin"
"$plugin" version >&2
echo "$dir"
