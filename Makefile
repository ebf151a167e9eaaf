# segpub: `make demo` runs a job end to end; `make test` runs the tests.
# Both start a local PostgreSQL (scripts/pg-ensure) when none is reachable.
GO ?= go
DB_URL = $(shell scripts/pg-ensure)

.PHONY: build test vet fuzz demo bench chaos

build:
	$(GO) build -o bin/segpub ./cmd/segpub

test:
	SEGPUB_TEST_DATABASE_URL=$${SEGPUB_TEST_DATABASE_URL:-$(DB_URL)} \
	SEGPUB_TEST_NATS_URL=$${SEGPUB_TEST_NATS_URL:-$$(scripts/nats-ensure)} \
	$(GO) test -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

# A short fuzzing run of job parsing and SQL compilation.
fuzz:
	$(GO) test ./internal/audience -run '^$$' -fuzz FuzzCompile -fuzztime 60s

# segpub demo starts a local PostgreSQL itself when none answers.
demo: build
	bin/segpub demo

bench: build
	SEGPUB_DATABASE_URL=$${SEGPUB_DATABASE_URL:-$(DB_URL)} bin/segpub bench

# The crash test: 3 workers, a push job over 1M users, 20 SIGKILLs, then
# PostgreSQL and NATS restarts (docs/reliability.md). About 10 minutes.
chaos:
	SEGPUB_CHAOS_REPORT=$${SEGPUB_CHAOS_REPORT:-chaos-report.md} $(GO) test -tags chaos -count=1 -v -timeout 50m ./internal/chaos/
