#!/usr/bin/env bash
# Builds a real Traefik from the Go module proxy (no Docker, no prebuilt download)
# and prints the binary's path. Cached under ~/.cache: the first build takes
# minutes and ~4 GB of module cache on 2 cores, later calls return at once.
#
# Traefik's go.mod carries replace/exclude directives that only apply to the
# main module, so a plain `go install traefik@version` fails; we build from a
# tiny wrapper module that copies them (and Traefik's go.sum).
#
# TRAEFIK_VERSION picks the release (default v3.7.13, the main Traefik; v2.x builds too: the
# checksum database answers 404 for github.com/traefik/traefik/v2 versions,
# so that one module is exempted from it with GONOSUMDB — its dependencies
# are still checked against Traefik's own go.sum).
set -euo pipefail

version="${TRAEFIK_VERSION:-v3.7.13}"
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

# Traefik v3.7.13 does not build from the Go module proxy as released: eight
# modules at the versions its go.sum pins are refused ("This module version
# is not available"). The closest build: every package of the request path,
# the plugin loader and the providers as released, and only these differ
# (the readme's "Which Traefik" says why none of it can matter to the guard):
#   - the basic-auth fork (github.com/abbot/go-http-auth) at the version
#     Traefik v3.6 uses, and four ACME DNS-provider SDKs of lego at the
#     nearest served versions;
#   - lego v5.4.1 without its two DNS providers whose SDKs are not served
#     at all (edgedns: Akamai's SDK v13; oraclecloud: nrdcg/oci-go-sdk);
#   - github.com/traefik/traefik/dynamic/ext, which Traefik's go.mod takes
#     from a folder of its repository the module's zip does not hold: in
#     Traefik's repository it holds two empty extension types, written here.
if [ "$version" = "v3.7.13" ]; then
	cat >>"$dir/src/go.mod" <<'MOD'

// socketioguard: modules the Go module proxy refuses at the versions Traefik v3.7.13 pins.
replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/huaweicloud/huaweicloud-sdk-go-v3 => github.com/huaweicloud/huaweicloud-sdk-go-v3 v0.1.215
	github.com/sacloud/sacloud-sdk-go => github.com/sacloud/sacloud-sdk-go v0.2.0
	github.com/ucloud/ucloud-sdk-go => github.com/ucloud/ucloud-sdk-go v0.22.123
	github.com/yandex-cloud/go-sdk/services/dns => github.com/yandex-cloud/go-sdk/services/dns v0.0.96
	github.com/go-acme/lego/v5 => ./lego
	github.com/akamai/AkamaiOPEN-edgegrid-golang/v13 => ./unserved/akamai
	github.com/nrdcg/oci-go-sdk/common/v1065 => ./unserved/oci-common
	github.com/nrdcg/oci-go-sdk/dns/v1065 => ./unserved/oci-dns
)
MOD
	# The first replace above supersedes Traefik's own for the fork: drop that one.
	sed -i '/github.com\/abbot\/go-http-auth => github.com\/containous\/go-http-auth v0.4.1-0.20260804094822/d' "$dir/src/go.mod"
	mkdir -p "$dir/src/pkg/config/dynamic/ext"
	printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24\n' >"$dir/src/pkg/config/dynamic/ext/go.mod"
	cat >"$dir/src/pkg/config/dynamic/ext/ext.go" <<'GO'
// Package ext holds the extension points of Traefik's dynamic configuration
// (empty in Traefik's own repository, pkg/config/dynamic/ext).
package ext

// HTTP extends the HTTP configuration.
type HTTP struct{}

// Router extends a router's configuration.
type Router struct{}
GO
	for m in akamai:github.com/akamai/AkamaiOPEN-edgegrid-golang/v13 oci-common:github.com/nrdcg/oci-go-sdk/common/v1065 oci-dns:github.com/nrdcg/oci-go-sdk/dns/v1065; do
		mkdir -p "$dir/src/unserved/${m%%:*}"
		printf 'module %s\n\ngo 1.22\n' "${m#*:}" >"$dir/src/unserved/${m%%:*}/go.mod"
	done
	lego_json=$(cd "$dir/src" && GOFLAGS=-mod=mod go mod download -json github.com/go-acme/lego/v5@v5.4.1)
	lego_dir=$(printf '%s\n' "$lego_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	rm -rf "$dir/src/lego" && cp -r "$lego_dir" "$dir/src/lego" && chmod -R u+w "$dir/src/lego"
	rm -rf "$dir/src/lego/providers/dns/edgedns" "$dir/src/lego/providers/dns/oraclecloud" "$dir/src/lego/cmd"
	sed -i -e '/providers\/dns\/edgedns"/d' -e '/providers\/dns\/oraclecloud"/d' \
		-e '/case "edgedns", "fastdns":/,+1d' -e '/case "oraclecloud":/,+1d' "$dir/src/lego/providers/dns/zz_gen_dns_providers.go"
	sed -i -e '/AkamaiOPEN-edgegrid-golang/d' -e '/nrdcg\/oci-go-sdk/d' "$dir/src/lego/go.mod"
fi
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
