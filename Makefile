GO ?= go
GOTESTFLAGS ?= -race -count=1 -timeout 40m

.PHONY: all build test demo deps deps-test vet bench compat compat-strict bench-quick clean

all: build

build:
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

test: deps-test vet
	$(GO) test $(GOTESTFLAGS) ./...

demo: deps build
	./bin/pgwarden demo

bench: deps build
	$(GO) run ./bench

# A two-minute smoke run of the same measurements.
bench-quick: deps build
	$(GO) run ./bench -quick

compat: deps build
	@./compat/install.sh
	@PGWARDEN_COMPAT_BINARY=bin/pgwarden PGWARDEN_COMPAT_MATRIX=bin/compat-matrix.txt \
	  $(GO) test -count=1 -timeout 15m ./compat/; rc=$$?; cat bin/compat-matrix.txt 2>/dev/null; exit $$rc

# Known gaps and bugs fail instead of skipping.
compat-strict:
	PGWARDEN_COMPAT_STRICT=1 $(MAKE) compat

clean:
	rm -rf bin
