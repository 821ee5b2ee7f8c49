# socketioguard — `make test` is the README's test command and what CI runs.
# It installs what it needs (yaegi v0.16.1 and v0.15.1; nginx, Redis and
# Chromium from Debian, the Node peers from e2e/node's lockfile, Traefik
# v3.7.13, v3.6.12 and v2.11.54 built from the Go module proxy; a Docker
# engine from Debian, Compose v2 built from its module source and a Debian
# root filesystem for the compose test's images; etcd from Debian and
# kube-apiserver and kubectl built from the Go module proxy for the
# Kubernetes test) and caches it under ~/.cache, so a second run is fast. make demo builds and installs only
# what the demo runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

MODULE   := github.com/sysmayal/socketioguard
CACHE    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/socketioguard
# The Yaegi versions Traefik embeds: v0.16.1 in v2.11.1 and later and every
# v3; v0.15.1 in v2.10 and v2.11.0.
YAEGI_VERSIONS := v0.16.1 v0.15.1
GOPATH_LAYOUT := $(CACHE)/yaegi-gopath

.PHONY: test vet unit yaegi_test doctor e2e setup demo demo-broken bench instructions soak fuzz bench-go tools clean

test: vet unit yaegi_test doctor e2e

vet:
	go vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }

unit:
	go test -race -count=1 ./...
	@# Allocation counts are exact only without the race detector.
	go test -count=1 -run 'CostDoesNotGrowPastTheLimits' .

# Yaegi, as Traefik runs the plugin: the source in a GOPATH layout, go.mod
# ignored; once for each Yaegi version a Traefik line embeds.
yaegi_test: $(foreach v,$(YAEGI_VERSIONS),yaegi_test_$(v))

yaegi_test_%: $(CACHE)/bin/yaegi-%
	rm -rf "$(GOPATH_LAYOUT)-$*" && mkdir -p "$(GOPATH_LAYOUT)-$*/src/$(MODULE)"
	cp -r *.go go.mod .traefik.yml .assets "$(GOPATH_LAYOUT)-$*/src/$(MODULE)/"
	cd "$(GOPATH_LAYOUT)-$*/src/$(MODULE)" && GOPATH="$(GOPATH_LAYOUT)-$*" GO111MODULE=off "$<" test -v . 2>&1 \
		| tee "$(CACHE)/yaegi-test-$*.log" | grep -E '^(--- FAIL|FAIL|PASS|ok|panic)|value.go' || true
	@grep -q '^PASS' "$(CACHE)/yaegi-test-$*.log" && ! grep -q '^--- FAIL' "$(CACHE)/yaegi-test-$*.log" \
		|| { echo "yaegi $* test failed:"; cat "$(CACHE)/yaegi-test-$*.log"; exit 1; }
	@echo "yaegi $*: $$(grep -c '^--- PASS' "$(CACHE)/yaegi-test-$*.log") top-level tests passed, $$(grep -c '^--- SKIP' "$(CACHE)/yaegi-test-$*.log" || true) skipped"

$(CACHE)/bin/yaegi-%:
	mkdir -p "$(CACHE)/bin/tmp-$*"
	start=$$SECONDS; GOBIN="$(CACHE)/bin/tmp-$*" go install github.com/traefik/yaegi/cmd/yaegi@$* && \
		echo "setup: yaegi $* took $$((SECONDS - start))s"
	mv "$(CACHE)/bin/tmp-$*/yaegi" "$@" && rmdir "$(CACHE)/bin/tmp-$*"

# Keep the built binaries (make would delete pattern-built prerequisites).
.PRECIOUS: $(CACHE)/bin/yaegi-%

tools: $(foreach v,$(YAEGI_VERSIONS),$(CACHE)/bin/yaegi-$(v))

# The doctor command (its own module: it uses a websocket library).
doctor:
	cd cmd/socketioguard && go vet ./... && go test -race -count=1 ./...

# The real stack: Yaegi conformance and the report's scenarios on a real
# Traefik, nginx, Socket.IO server and client (see e2e/readme.md).
setup:
	bash scripts/setup-e2e.sh --browser --suite --docker --kube >/dev/null

# The interpreted conformance (configuration decoding, the handler, the
# hammer) runs again under Yaegi v0.15.1 (Traefik v2.10–v2.11.0), through
# e2e/go.yaegi015.mod: the same code, the other Yaegi.
YAEGI015_TESTS := TestConfigDecodesAlikeFromEveryProvider|TestBadConfigIsRefusedThroughTraefiksDecoder|TestInterpretedGuardInFrontOfAReverseProxy|TestDemoComposeFile|TestLoadsThePluginsTheBenchmarksUse|TestInterpretedGuardUnderConcurrentLoad

e2e:
	set -a; eval "$$(bash scripts/setup-e2e.sh --browser --suite --docker --kube)"; set +a; \
	cd e2e && go vet ./... && go test -race -count=1 -timeout 15m ./... && \
	echo "e2e interpreted conformance under yaegi v0.15.1:" && \
	go test -modfile=go.yaegi015.mod -race -count=1 -run '$(YAEGI015_TESTS)' . ./interpreted/

# The report's deployment, locally (README's first command); Ctrl-C stops it.
demo:
	set -a; eval "$$(bash scripts/setup-e2e.sh)"; set +a; \
	cd e2e && go run ./cmd/demo

demo-broken:
	set -a; eval "$$(bash scripts/setup-e2e.sh)"; set +a; \
	cd e2e && go run ./cmd/demo --broken

# Longer fuzzing than the seed corpus run in `unit` (not part of `test`).
FUZZTIME ?= 60s
fuzz:
	go test -run XXX -fuzz FuzzServeHTTP -fuzztime $(FUZZTIME) .
	go test -run XXX -fuzz FuzzReadEngineIOQuery -fuzztime $(FUZZTIME) .
	go test -run XXX -fuzz FuzzShortWayQuery -fuzztime $(FUZZTIME) .
	go test -run XXX -fuzz FuzzPlainHost -fuzztime $(FUZZTIME) .
	go test -run XXX -fuzz FuzzCostDoesNotGrowPastTheLimits -fuzztime $(FUZZTIME) .

bench-go:
	go test -run XXX -bench . -benchmem -count 5 .

# What the guard costs inside a real Traefik, side by side in one run
# (writes bench/report.md and bench/throughput.png; several minutes).
# BASELINE=<git revision> also runs the plugin as committed there, paired
# with the working tree's round by round.
BASELINE ?=
bench:
	set -a; eval "$$(bash scripts/setup-e2e.sh --bench)"; set +a; \
	cd e2e && go run ./cmd/bench run $(if $(BASELINE),--baseline $(BASELINE))

# The instructions Traefik's own process executes per request, for the
# trivial plugin, the handshake floor and the guard side by side in one
# Traefik under valgrind's callgrind: repeatable where bench's throughput
# rounds are not (a minute or two; prints, writes nothing). BASELINE as
# for bench.
instructions:
	set -a; eval "$$(bash scripts/setup-e2e.sh --bench)"; set +a; \
	cd e2e && go run ./cmd/bench instructions $(if $(BASELINE),--baseline $(BASELINE))

# 1,000 socket.io clients through a header-stripping nginx → two Traefiks →
# three replicas → Redis; a replica killed and started again, Redis restarted
# (writes bench/soak.md; exits non-zero when a counted event was lost,
# duplicated or reordered, or a client did not come back).
soak:
	set -a; eval "$$(bash scripts/setup-e2e.sh)"; set +a; \
	cd e2e && go run ./cmd/bench soak

clean:
	rm -rf $(foreach v,$(YAEGI_VERSIONS),"$(GOPATH_LAYOUT)-$(v)")
