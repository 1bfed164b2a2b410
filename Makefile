# Forlock Fleet. `make help` lists the targets.
GO       ?= go
BUF      := $(GO) tool -modfile=tools/buf.mod buf
LINT     := $(GO) tool -modfile=tools/lint.mod golangci-lint
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/forlock/fleet/internal/buildinfo.version=$(VERSION)
FUZZTIME ?= 10s
CMDS     := controlplane/cmd/forlock-controlplane agent/cmd/forlock-agent cli/cmd/forlockctl
# Where buf generates: the public API, and the store's records (not an API).
PROTODIRS := proto controlplane/internal/store/proto

GOTESTFLAGS ?=

.PHONY: all help build generate check-generate api-baseline lint test-deps test test-short fuzz bench demo clean

all: build lint test ## build, lint and test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build the three binaries into ./bin
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(CMDS))

generate: ## format the protos and regenerate the Go code beside them
	$(BUF) format -w
	$(BUF) generate

check-generate: ## fail if the generated code or proto formatting is stale, or the API broke compatibility
	$(BUF) lint
	$(BUF) format --diff --exit-code
	@$(BUF) breaking --against tools/api-baseline.binpb || { echo "the API is no longer compatible with tools/api-baseline.binpb: restore what was removed or renamed (a deliberate break: make api-baseline, and say so in the commit)"; exit 1; }
	$(BUF) generate
	@git diff --exit-code -- $(PROTODIRS) || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(PROTODIRS))" || { git status --porcelain -- $(PROTODIRS); echo "untracked generated files: run 'make generate' and commit"; exit 1; }

api-baseline: ## record the current API as the compatibility baseline (only for a deliberate break, or after a release)
	$(BUF) build -o tools/api-baseline.binpb

lint: ## go vet, golangci-lint and buf lint
	$(GO) vet ./...
	$(LINT) run ./...
	$(BUF) lint

test-deps: ## install (as root, Debian) and build what the tests need: packages, test node images, S3/registry/Vault servers
	deploy/test-deps.sh test

test: test-deps ## every test with the race detector, through go test -json: a summary, and a failure if any test fails or skips
	test/ci-test.sh -race -count=1 -timeout 45m $(GOTESTFLAGS) ./...

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

fuzz: ## run every fuzz target for FUZZTIME each (a duration, or a count such as 20000x: CI uses a count, see .ci/run)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: build ## benchmarks (method and figures: docs/benchmarks.md); BENCH_AGENTS=1000, BENCH_DB_MB=1000 by default
	BENCH_AGENTS=$${BENCH_AGENTS:-1000} $(GO) test -run '^$$' -bench . -benchtime $${BENCHTIME:-5x} -timeout 30m ./test/e2e ./internal/artifact
	$(GO) test -run '^$$' -bench . -benchtime 300x ./controlplane/internal/store
	GO=$(GO) test/bench/auth-audit.sh
	deploy/testnode/build-images.sh >/dev/null
	BIN=$(BIN) test/bench/backup-vs-guide.sh
	BIN=$(BIN) test/bench/pitr-rto.sh
	BIN=$(BIN) test/bench/metrics-overhead.sh

demo: build ## run a local control plane and one enrolled agent, list the fleet
	deploy/test-deps.sh demo
	./deploy/demo.sh

clean: ## remove build output
	rm -rf $(BIN) .demo
