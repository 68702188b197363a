# idemkit — every target works from a fresh clone. Integration tests take
# their servers from IDEMKIT_REDIS_URL / IDEMKIT_POSTGRES_URL (see README).

GO       ?= go
MODULES  := $(shell $(GO) list -f '{{.Dir}}' -m || echo go-list-m-failed)
PKGS     := $(addsuffix /...,$(MODULES))
BIN      := bin
FUZZTIME ?= 10s
BENCHCOUNT ?= 6
BENCHTIME_ADAPTERS ?= 150ms
BENCHTIME_STORES ?= 300ms
BENCHTIME_PAIRS ?= 2s
LOADRATE ?= 500
LOADTIME ?= 3s
BENCHOUT := bench/out

RELIABILITY ?= bounded

.PHONY: all demo demo-stores reliability test test-short bench bench-modules fuzz lint vet fmt-check core-deps release-verify release-check release-set release-tags tidy build clean

all: lint test

## demo: the example service on chi with the embedded memory store, walked by a scripted client
demo:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/chi ./examples/chi
	$(GO) build -o $(BIN)/democlient ./examples/democlient
	$(BIN)/democlient -server $(BIN)/chi -store memory

## demo-stores: the same walk on chi over redis, postgres and tiered (needs IDEMKIT_REDIS_URL, IDEMKIT_POSTGRES_URL)
demo-stores:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/chi ./examples/chi
	$(GO) build -o $(BIN)/democlient ./examples/democlient
	@set -e; for s in redis postgres tiered; do $(BIN)/democlient -server $(BIN)/chi -store $$s; done

## test: every module's tests with -race (integration tests need the services, see README)
test: core-deps
	$(GO) test -race -count=1 -parallel 8 -timeout 20m $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

## reliability: the reliability suite (reliability/, docs/reliability.md): three instances of the chi, gin and
## fiber examples as real processes sharing a private Redis, Postgres or both, under retried load while the store
## restarts, hangs, loses its connections or its network, a handler outlives its lease and an instance is killed;
## prints the figures. RELIABILITY=bounded (default, CI, about two minutes) or full
reliability:
	@rm -f reliability/table.out
	@cd reliability && RELIABILITY=$(RELIABILITY) RELIABILITY_TABLE=table.out $(GO) test -count=1 -timeout 45m . ; \
		st=$$?; cat table.out 2>/dev/null; rm -f table.out; exit $$st

## bench: the cross-module benchmarks (bench/) in BENCHCOUNT interleaved rounds, the
## loopback load run, then docs/benchmarks.md and docs/benchmarks-throughput.svg
## (stores need IDEMKIT_REDIS_URL and IDEMKIT_POSTGRES_URL; quick run: BENCHCOUNT=2)
bench:
	@mkdir -p $(BENCHOUT) && rm -f $(BENCHOUT)/round-*.txt $(BENCHOUT)/load.jsonl
	cd bench && $(GO) test -c -o out/bench.test .
	@set -e; for i in $$(seq -w 1 $(BENCHCOUNT)); do \
		echo "bench: round $$i of $(BENCHCOUNT)"; \
		$(BENCHOUT)/bench.test -test.run '^$$' -test.bench '^BenchmarkAdapter$$' -test.benchmem \
			-test.benchtime $(BENCHTIME_ADAPTERS) > $(BENCHOUT)/round-$$i-adapters.txt || { cat $(BENCHOUT)/round-$$i-adapters.txt; exit 1; }; \
		$(BENCHOUT)/bench.test -test.run '^$$' -test.bench '^Benchmark(Store|RedisRecordMemory)$$' \
			-test.benchtime $(BENCHTIME_STORES) > $(BENCHOUT)/round-$$i-stores.txt || { cat $(BENCHOUT)/round-$$i-stores.txt; exit 1; }; \
		$(BENCHOUT)/bench.test -test.run '^$$' -test.bench '^Benchmark(StorePair|AdapterPair|AdapterFloor|AdapterRefusals)$$' \
			-test.benchtime $(BENCHTIME_PAIRS) > $(BENCHOUT)/round-$$i-pairs.txt || { cat $(BENCHOUT)/round-$$i-pairs.txt; exit 1; }; \
		grep -h -- '--- SKIP\|skipped' $(BENCHOUT)/round-$$i-*.txt | head -3 || true; \
	done
	cd bench && $(GO) run ./cmd/loadrun -duration $(LOADTIME) -rate $(LOADRATE) -o out/load.jsonl
	cd bench && $(GO) run ./cmd/report -how "make bench BENCHCOUNT=$(BENCHCOUNT)" \
		-o ../docs/benchmarks.md -svg ../docs/benchmarks-throughput.svg -load out/load.jsonl out/round-*.txt

## bench-modules: every module's own benchmarks, -benchmem, BENCHCOUNT rounds
bench-modules:
	$(GO) test -run '^$$' -bench . -benchmem -count=$(BENCHCOUNT) $(PKGS)

## fuzz: a short run of every fuzz target
fuzz:
	cd core && $(GO) test -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME) .
	cd core && $(GO) test -run '^$$' -fuzz '^FuzzDecodeResponse$$' -fuzztime $(FUZZTIME) ./codec
	cd core && $(GO) test -run '^$$' -fuzz '^FuzzDecodeHeader$$' -fuzztime $(FUZZTIME) ./codec
	cd core && $(GO) test -run '^$$' -fuzz '^FuzzFingerprint$$' -fuzztime $(FUZZTIME) .
	cd core && $(GO) test -run '^$$' -fuzz '^FuzzReplayRecord$$' -fuzztime $(FUZZTIME) .
	cd stores/pgxstore && $(GO) test -run '^$$' -fuzz '^FuzzDecodeRow$$' -fuzztime $(FUZZTIME) .
	cd stores/redisstore && $(GO) test -run '^$$' -fuzz '^FuzzCompletedRecord$$' -fuzztime $(FUZZTIME) .

## model: model-check the claim protocol (model/idemkit.pml) with spin, and show that the model without
## fencing fails the check (needs spin and a C compiler; installs nothing)
.PHONY: model
model:
	@command -v spin >/dev/null 2>&1 || { echo "make model: spin is not installed (Debian: apt-get install spin)"; exit 1; }
	./model/check.sh

## lint: gofmt, go vet in every module, core's zero requirements, the release rules of the go.mod files
lint: fmt-check vet core-deps release-verify

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## core-deps: core and conformance must require nothing but each other (their go.mod also covers their tests)
core-deps:
	@for m in core conformance; do extra=$$(cd $$m && $(GO) mod edit -json | grep -o '"Path": "[^"]*"' | grep -v '"github.com/idemkit/idemkit/'); \
		if [ -n "$$extra" ]; then echo "$$m must require nothing outside idemkit, found: $$extra"; exit 1; fi; done

## release-verify: published go.mod files have no replace lines and require only published siblings, all at
## the version go.work replaces by the tree; prints the release tags in dependency order
release-verify:
	@$(GO) run ./tools/release tags >/dev/null

## release-check: a file-system module proxy built from the tree, and five consumer services fetched from it
## with GOWORK=off as a user would (needs IDEMKIT_REDIS_URL and IDEMKIT_POSTGRES_URL); prints module counts
release-check:
	$(GO) run ./tools/release check

## release-set VERSION=v0.x.y: require every sibling at VERSION, and print the tags to push, in order (RELEASING.md)
release-set:
	@test -n "$(VERSION)" || { echo "usage: make release-set VERSION=v0.x.y"; exit 2; }
	$(GO) run ./tools/release set $(VERSION)

release-tags:
	@$(GO) run ./tools/release tags

## tidy: go mod tidy in every module, siblings replaced by the tree for the run only
tidy:
	$(GO) run ./tools/release tidy

build:
	$(GO) build $(PKGS)

clean:
	rm -rf $(BIN)
