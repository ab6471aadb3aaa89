# Coffer — build, test, benchmark and demo.
GO       ?= go
BIN      := bin/coffer
PKGS     := ./...
FUZZTIME ?= 30s
STATICCHECK_VERSION ?= v0.8.2
export GOFLAGS := -buildvcs=false

.PHONY: all build test test-short race lint staticcheck fuzz bench demo deps clean

all: build

build:
	$(GO) build -o $(BIN) ./appliance/cmd/coffer

# Tools the tests use; installed when missing (Debian).
deps:
	@missing=""; \
	for t in mke2fs:e2fsprogs debugfs:e2fsprogs sgdisk:gdisk; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

lint: staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$$($(GO) env GOPATH)/bin/staticcheck $(PKGS)

staticcheck:
	@test -x $$($(GO) env GOPATH)/bin/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

demo: build var/go.mod
	$(BIN) demo

# var/ holds generated data (demo stores, the benchmark corpus); a go.mod
# there keeps it out of ./... patterns.
var/go.mod:
	@mkdir -p var && printf 'module coffer.local/var\n' > $@
