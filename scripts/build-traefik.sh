#!/usr/bin/env bash
# Builds a real Traefik from the Go module proxy (no Docker, no prebuilt download)
# and prints the binary's path. Cached under ~/.cache: the first build takes
# minutes and ~4 GB of module cache on 2 cores, later calls return at once.
#
# Traefik's go.mod carries replace/exclude directives that only apply to the
# main module, so a plain `go install traefik@version` fails; we build from a
# tiny wrapper module that copies them (and Traefik's go.sum).
#
# TRAEFIK_VERSION picks the release (default v3.6.12; v2.x builds too: the
# checksum database answers 404 for github.com/traefik/traefik/v2 versions,
# so that one module is exempted from it with GONOSUMDB — its dependencies
# are still checked against Traefik's own go.sum).
set -euo pipefail

version="${TRAEFIK_VERSION:-v3.6.12}"
major="${version%%.*}"
module="github.com/traefik/traefik/$major"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/traefik/traefik"
cache="${SOCKETIOGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/socketioguard}"
dir="$cache/traefik-$version"
bin="$dir/traefik"

if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "Version: *$version\$"; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir/src"
echo "building Traefik $version into $dir (first time only, takes several minutes)" >&2

mod_json=$(cd "$dir/src" && GOFLAGS=-mod=mod go mod download -json "$module@$version")
upstream_mod=$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
upstream_dir=$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -f "$upstream_mod" ] && [ -d "$upstream_dir" ] || { echo "could not download traefik $version" >&2; exit 1; }

{
	echo "module socketioguard.local/traefikbuild"
	echo
	sed -n 's/^go \(.*\)$/go \1/p' "$upstream_mod"
	echo
	echo "require $module $version"
	echo
	# replace (...) and exclude lines, verbatim from Traefik's own go.mod
	awk '/^replace \(/{p=1} p{print} p&&/^\)/{p=0; print ""} /^replace [^(]/{print} /^exclude /{print}' "$upstream_mod"
} >"$dir/src/go.mod"
cp "$upstream_dir/go.sum" "$dir/src/go.sum"
chmod u+w "$dir/src/go.sum"
cat >"$dir/src/tools.go" <<GO
//go:build tools

package traefikbuild

import _ "$module/cmd/traefik"
GO

(cd "$dir/src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
	go build -trimpath -ldflags "-X $module/pkg/version.Version=$version" \
		-o "$bin.tmp" "$module/cmd/traefik")
mv "$bin.tmp" "$bin"
"$bin" version >&2
echo "$bin"
