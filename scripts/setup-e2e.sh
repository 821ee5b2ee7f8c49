#!/usr/bin/env bash
# Installs everything the end-to-end suite, the demo and the benchmarks need,
# on a fresh Debian machine with Go and Node (as CI has): nginx, Redis and
# Chromium from Debian, the Node peers from the committed lockfile, and Traefik built
# from the Go module proxy. Everything is cached: a second run takes seconds.
#
# usage: scripts/setup-e2e.sh [--browser] [--bench] [--suite] [--docker] [--kube]
#        (--browser also installs Chromium, --bench wrk and valgrind; --suite also builds
#        the Traefik lines the suite runs besides the main one: v3.6.12 and
#        v2.11.54. The demo and the bench need only the main one, v3.7.13.
#        --docker: a Docker engine for the compose test — Debian's docker.io
#        and debootstrap, Compose v2 built from its module source, a Debian
#        root filesystem and an npm cache the test's images are built from;
#        no image registry is needed. --kube: a Kubernetes API server for the
#        kubernetes test — Debian's etcd, kube-apiserver and kubectl built from
#        the Go module proxy, and the CRDs Traefik's own module ships.)
# prints shell assignments for the tools found, e.g. eval "$(scripts/setup-e2e.sh)"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
want_browser=false
want_bench=false
want_suite=false
want_docker=false
want_kube=false
for arg in "$@"; do
	case "$arg" in
	--browser) want_browser=true ;;
	--bench) want_bench=true ;;
	--suite) want_suite=true ;;
	--docker) want_docker=true ;;
	--kube) want_kube=true ;;
	*) echo "setup: unknown option $arg" >&2; exit 2 ;;
	esac
done

say() { echo "setup: $*" >&2; }

# Each step that did work says how long it took (the readme's Development
# section lists these cold times); a cached step says nothing.
timed() {
	local what="$1" start=$SECONDS
	shift
	"$@"
	local took=$((SECONDS - start))
	[ "$took" -lt 2 ] || say "$what took $((took / 60))m$((took % 60))s"
}

apt_install() {
	local missing=()
	for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || { say "need root to install ${missing[*]} (apt-get)"; exit 1; }
	say "installing ${missing[*]} from Debian"
	# Packages must not start their services here (nginx would take port 80).
	local policy=/usr/sbin/policy-rc.d created=false
	if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=true; fi
	local apt_lists_fresh
	apt_lists_fresh=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)
	[ -n "$apt_lists_fresh" ] || DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	$created && rm -f "$policy"
	return 0
}

command -v go >/dev/null || { say "Go is required (https://go.dev/dl)"; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { say "Node.js 18+ with npm is required"; exit 1; }

timed "nginx and Redis from Debian" apt_install nginx redis-server
$want_browser && timed "Chromium from Debian" apt_install chromium
$want_bench && timed "wrk and valgrind from Debian" apt_install wrk valgrind

# Node peers (socket.io, socket.io-client, the Redis client, adapter and
# emitter, playwright-core) from the lockfile.
node_dir="$root/e2e/node"
stamp="$node_dir/node_modules/.socketioguard-lock"
node_peers() {
	say "npm ci in e2e/node"
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
	cp "$node_dir/package-lock.json" "$stamp"
}
if [ ! -f "$stamp" ] || ! cmp -s "$node_dir/package-lock.json" "$stamp"; then
	timed "the Node peers (npm ci)" node_peers
fi

# build_traefik VERSION VARIABLE: builds (or finds cached) and prints VARIABLE=path.
build_traefik() {
	local path
	path="$(TRAEFIK_VERSION="$1" "$root/scripts/build-traefik.sh")"
	echo "$2=$path"
}
main_traefik="${TRAEFIK_VERSION:-v3.7.13}"
timed "Traefik $main_traefik" build_traefik "$main_traefik" SOCKETIOGUARD_TRAEFIK
if $want_suite; then
	# v3.6.12 and the v2.11 line (its newest patch the Go module proxy
	# serves), for the scenarios the suite also runs there.
	timed "Traefik v3.6.12" build_traefik v3.6.12 SOCKETIOGUARD_TRAEFIK_V36
	v2="${TRAEFIK_V2_VERSION:-v2.11.54}"
	timed "Traefik $v2" build_traefik "$v2" SOCKETIOGUARD_TRAEFIK_V2
fi
if $want_docker; then
	timed "docker.io and debootstrap from Debian" apt_install docker.io debootstrap
	docker_cache="${SOCKETIOGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/socketioguard}/docker"
	mkdir -p "$docker_cache"
	compose_config() { echo "SOCKETIOGUARD_DOCKER_CONFIG=$("$root/scripts/build-compose.sh")"; }
	timed "Docker Compose v2.40.3" compose_config
	# The root filesystem every test image starts from (no registry here:
	# the images carry the compose file's public names, built from this).
	rootfs="$docker_cache/debian-bookworm-minbase.tar"
	debian_rootfs() {
		local dir
		dir=$(mktemp -d "$docker_cache/rootfs.XXXXXX")
		say "debootstrap bookworm (minbase)"
		debootstrap --variant=minbase bookworm "$dir/root" http://deb.debian.org/debian >"$dir/log" 2>&1 \
			|| { cat "$dir/log" >&2; rm -rf "$dir"; exit 1; }
		tar -C "$dir/root" -cf "$rootfs.tmp" . && mv "$rootfs.tmp" "$rootfs"
		rm -rf "$dir"
	}
	[ -s "$rootfs" ] || timed "a Debian bookworm root filesystem (debootstrap)" debian_rootfs
	# The Node images run `npm ci` offline from this cache, filled from the
	# same lockfile.
	npm_cache="$docker_cache/npm-cache"
	npm_cache_fill() {
		local dir
		dir=$(mktemp -d)
		cp "$node_dir/package.json" "$node_dir/package-lock.json" "$dir/"
		(cd "$dir" && npm ci --cache "$npm_cache" --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
		rm -rf "$dir"
		cp "$node_dir/package-lock.json" "$npm_cache/.socketioguard-lock"
	}
	cmp -s "$node_dir/package-lock.json" "$npm_cache/.socketioguard-lock" 2>/dev/null \
		|| timed "the images' npm cache" npm_cache_fill
	echo "SOCKETIOGUARD_DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)"
	echo "SOCKETIOGUARD_DOCKER=/usr/bin/docker"
	echo "SOCKETIOGUARD_DOCKER_CACHE=$docker_cache"
fi
if $want_kube; then
	timed "etcd from Debian" apt_install etcd-server
	kube_dir() { echo "SOCKETIOGUARD_KUBE=$("$root/scripts/build-kube.sh")"; }
	timed "kube-apiserver and kubectl v1.34.4" kube_dir
	# Traefik's CRDs and the Gateway API CRDs, as Traefik v3.7.13's module
	# ships them for its own integration tests (the Gateway API version its
	# go.mod requires, v1.6.1, experimental channel).
	traefik_src=$(cd /tmp && GOFLAGS=-mod=mod GONOSUMDB=github.com/traefik/traefik go mod download -json "github.com/traefik/traefik/v3@v3.7.13" \
		| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	echo "SOCKETIOGUARD_ETCD=$(command -v etcd || echo /usr/bin/etcd)"
	echo "SOCKETIOGUARD_TRAEFIK_CRDS=$traefik_src/integration/fixtures/k8s/01-traefik-crd.yml"
	echo "SOCKETIOGUARD_GATEWAY_CRDS=$traefik_src/integration/fixtures/k8s-gateway/00-experimental-v1.6.1.yml"
fi
echo "SOCKETIOGUARD_NGINX=$(command -v nginx || echo /usr/sbin/nginx)"
echo "SOCKETIOGUARD_REDIS=$(command -v redis-server || echo /usr/bin/redis-server)"
echo "SOCKETIOGUARD_NODE=$(command -v node)"
$want_browser && echo "SOCKETIOGUARD_CHROMIUM=$(command -v chromium)"
exit 0
