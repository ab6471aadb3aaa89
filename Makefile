# Coffer — build, test, benchmark and demo.
GO       ?= go
BIN      := bin/coffer
PKGS     := ./...
FUZZTIME ?= 30s
STATICCHECK_VERSION ?= v0.8.2
export GOFLAGS := -buildvcs=false

.PHONY: all build test test-short lint staticcheck fuzz bench bench-deps demo deps ui-deps

all: build

build:
	$(GO) build -o $(BIN) ./appliance/cmd/coffer

# Tools the tests use; installed when missing (Debian).
deps:
	@missing=""; \
	for t in mke2fs:e2fsprogs debugfs:e2fsprogs sgdisk:gdisk qemu-img:qemu-utils sfdisk:fdisk \
	         mkfs.xfs:xfsprogs mkntfs:ntfs-3g mkfs.vfat:dosfstools mcopy:mtools pvcreate:lvm2 losetup:mount \
	         swtpm:swtpm swtpm_ioctl:swtpm-tools; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The browser end-to-end test (tests/ui_e2e_test.go) drives Debian's
# chromium with playwright-core from tests/ui (no browser download).
ui-deps:
	@test -x /usr/bin/chromium || { echo "installing: chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@cd tests/ui && if [ ! -f package-lock.json ]; then npm install --no-audit --no-fund; \
	  elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; fi

test: deps ui-deps
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

# Benchmark against restic and borg (needs root: debootstrap and images).
bench-deps:
	@missing=""; \
	for t in debootstrap:debootstrap sgdisk:gdisk mke2fs:e2fsprogs restic:restic borg:borgbackup; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: build bench-deps var/go.mod
	bash tests/bench/corpus.sh
	@rc=0; \
	$(GO) run ./tests/bench/cmd/bench -coffer $(BIN) || rc=1; \
	$(GO) run ./tests/bench/cmd/vsbench -dir var/bench || rc=1; \
	$(GO) run ./tests/bench/cmd/filebench -coffer $(BIN) -dir var/bench || rc=1; \
	exit $$rc

# Fuzzing: every Fuzz* target of FUZZPKGS runs for FUZZTIME. go test takes
# one -fuzz target per package per run, so the targets run one at a time.
# New inputs that widen coverage are minimized for at most FUZZMINIMIZETIME.
# Failing inputs land in the package's testdata/fuzz/<Target>/.
FUZZMINIMIZETIME ?= 1s
FUZZPKGS         ?= ./store/... ./tape/...

fuzz:
	@fail=""; \
	for pkg in $$($(GO) list $(FUZZPKGS)); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$target ($$pkg, $(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) \
	      -fuzzminimizetime=$(FUZZMINIMIZETIME) $$pkg || fail="$$fail $$target"; \
	  done; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: failed:$$fail"; exit 1; fi

# var/ holds generated data (demo stores, the benchmark corpus); a go.mod
# there keeps it out of ./... patterns.
var/go.mod:
	@mkdir -p var && printf 'module coffer.local/var\n' > $@
