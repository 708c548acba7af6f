GO ?= go
GOTESTFLAGS ?= -race -count=1 -timeout 40m

.PHONY: all build test demo deps deps-test vet check-files bench compat compat-strict bench-quick clean

all: build

build:
	@echo "building bin/pgwarden (the first build compiles pg_query's C parser with cgo: about a minute)"
	$(GO) build -o bin/pgwarden ./cmd/pgwarden

deps:
	@./scripts/deps.sh

deps-test:
	@./scripts/deps.sh --test
	@./compat/install.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet -mod=mod ./...

# Binaries and data dumps are kept out of git: a tracked file over 1 MB fails the test target.
check-files:
	@./scripts/check-large-files.sh

test: check-files deps-test vet
	@echo "running go test ./... (the first run compiles pg_query with cgo and starts throwaway PostgreSQL clusters)"
	$(GO) test $(GOTESTFLAGS) ./...
	@echo "the large-statement memory test, without the race detector (whose shadow memory swamps it)"
	$(GO) test -count=1 -run 'TestLargeStatementPeakMemory' ./rewrite/
	@echo "validating the Kubernetes manifests (deploy/, a module of its own for the Kubernetes API types)"
	cd deploy && $(GO) test -mod=mod -count=1 ./...

demo: deps build
	@echo "starting the demo: a throwaway PostgreSQL, the ticket service and the proxy (Ctrl-C stops all three)"
	./bin/pgwarden demo

# Writes bench/RESULTS.md and bench/throughput.png (tracked) after about 25 minutes on two cores.
# BENCHFLAGS passes flags on, e.g. BENCHFLAGS=-targets=direct,pgbouncer,relay-coro,relay-uring,pgwarden.
BENCHFLAGS ?=
bench: deps build
	$(GO) run ./bench $(BENCHFLAGS)

# A two-minute smoke run of the same measurements; its report goes to bench/out/quick/ (ignored).
bench-quick: deps build
	$(GO) run ./bench -quick

# go test runs in compat/, so the binary and the matrix are passed as absolute paths.
compat: deps build
	@./compat/install.sh
	@PGWARDEN_COMPAT_BINARY=$(CURDIR)/bin/pgwarden PGWARDEN_COMPAT_MATRIX=$(CURDIR)/bin/compat-matrix.txt \
	  $(GO) test -count=1 -timeout 15m ./compat/; rc=$$?; cat $(CURDIR)/bin/compat-matrix.txt 2>/dev/null; exit $$rc

# Known gaps and bugs fail instead of skipping.
compat-strict:
	PGWARDEN_COMPAT_STRICT=1 $(MAKE) compat

clean:
	rm -rf bin
