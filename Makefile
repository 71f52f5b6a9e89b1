# syncd: `make` lists the targets.
SHELL := bash
TOOLS ?= $(HOME)/.cache/syncd-tools
export SYNCD_TOOLS := $(TOOLS)
export PATH := $(TOOLS)/bin:$(PATH)
GO ?= go
# The tools the tests run: sops and age to encrypt, restic for backups, the Compose CLI for the
# benchmark baseline, trivy for image scans (its first build takes over ten minutes; cached after).
TEST_TOOLS ?= age sops restic compose trivy

.DEFAULT_GOAL := help
.PHONY: help build tools test lint bench demo golden release clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/syncd
	@echo "build: bin/syncd (go build; a first build downloads and compiles the modules: minutes on 2 cores)" >&2
	@start=$$(date +%s); CGO_ENABLED=0 $(GO) build -trimpath -o bin/syncd ./cmd/syncd && echo "build: bin/syncd in $$(( $$(date +%s) - start )) s" >&2

tools: ## build the pinned test tools into $(TOOLS) (cached)
	scripts/tools.sh $(TEST_TOOLS)

# make test builds trivy (the slow one) in the background: the tests that need it wait for it,
# the others start at once.
test: ## run every test (needs a Docker engine; fails, never skips, when a part is missing)
	scripts/tools.sh $(filter-out trivy,$(TEST_TOOLS))
	scripts/tools.sh --background $(filter trivy,$(TEST_TOOLS))
	SYNCD_TEST_STRICT=1 $(GO) test -count=1 -timeout 60m ./...

lint: ## gofmt, go.mod tidy, go vet, and `syncd validate --strict` of the example repository
	@out=$$(gofmt -l cmd internal); [ -z "$$out" ] || { echo "not gofmt-formatted:"; echo "$$out"; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run ./cmd/syncd validate --strict --repo repo-layout

bench: tools ## benchmarks: syncd against git pull + docker compose up -d, same run
	SYNCD_TEST_STRICT=1 $(GO) test -run '^$$' -bench . -benchtime 5x -benchmem -timeout 150m ./...

demo: build ## bring up the example fleet's demo host on the local Docker engine with syncd
	scripts/demo.sh

golden: ## rewrite the golden files after an intended change (review the diff)
	$(GO) test ./internal/plan ./internal/review ./cmd/syncd -run 'Golden' -update

release: ## binaries (amd64, arm64), install.sh, SHA256SUMS, images into dist/VERSION: make release VERSION=v1.2.3
	@[ -n "$(VERSION)" ] || { echo "make release: set VERSION, e.g. make release VERSION=v1.2.3"; exit 2; }
	scripts/release.sh $(VERSION) $(OUT)

clean: ## remove bin/ and dist/ (the tool cache stays)
	rm -rf bin dist
