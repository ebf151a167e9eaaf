# segpub: `make demo` runs a job end to end; `make test` runs the tests.
# Both start a local PostgreSQL (scripts/pg-ensure) when none is reachable.
# Each keeps to a database of its own on that server, created on first use:
# the tests segpub_test, the benchmark segpub_bench, the demo segpub_demo
# (segpub demo creates it); none writes into the server's postgres database.
GO ?= go
DB_URL = $(shell scripts/pg-ensure segpub_test)
BENCH_DB_URL = $(shell scripts/pg-ensure segpub_bench)

.PHONY: build image deploy-lint test unit race vet fuzz demo bench chaos reliability

# The packages that start goroutines of their own, run again under the race
# detector.
RACE_PKGS = ./internal/cli/ ./internal/publish/ ./internal/worker/ ./internal/scheduler/ \
	./internal/queue/... ./internal/sink/... ./internal/seed/ ./internal/cleaner/ ./internal/lifecycle/ ./internal/natsjs/ \
	./internal/console/ ./internal/service/ ./internal/partition/ ./internal/state/ ./internal/httpserve/

# The version segpub version reports: the nearest tag, commits since, and
# -dirty for a modified tree (the commit hash alone without tags).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

build:
	$(GO) build -buildvcs=auto -ldflags "-X github.com/segpub/segpub/internal/cli.version=$(VERSION) -X github.com/segpub/segpub/internal/cli.revision=$(REVISION)" -o bin/segpub ./cmd/segpub

# The container image, tagged and stamped with VERSION.
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t segpub:$(VERSION) .

# The CloudFormation template against the resource specifications (cfn-lint,
# when installed); go test ./deploy checks it against segpub's settings.
deploy-lint:
	cfn-lint --regions ap-northeast-2 -- deploy/segpub.yaml

# Every test, then the goroutine-owning packages under -race.
test: unit race

unit:
	SEGPUB_TEST_DATABASE_URL=$${SEGPUB_TEST_DATABASE_URL:-$(DB_URL)} \
	SEGPUB_TEST_NATS_URL=$${SEGPUB_TEST_NATS_URL:-$$(scripts/nats-ensure)} \
	$(GO) test -count=1 -timeout 15m ./...

race:
	SEGPUB_TEST_DATABASE_URL=$${SEGPUB_TEST_DATABASE_URL:-$(DB_URL)} \
	SEGPUB_TEST_NATS_URL=$${SEGPUB_TEST_NATS_URL:-$$(scripts/nats-ensure)} \
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)

vet:
	$(GO) vet ./...

# A short fuzzing run of job parsing and SQL compilation.
fuzz:
	$(GO) test ./internal/audience -run '^$$' -fuzz FuzzCompile -fuzztime 60s

# segpub demo starts a local PostgreSQL itself when none answers, and seeds
# database segpub_demo.
# DEMO_FLAGS adds flags (internal/demo's test runs make demo with
# DEMO_FLAGS='--users 3000').
demo: build
	bin/segpub demo $(DEMO_FLAGS)

# Every workload at 1M, 3M and 10M users (seeded on first use), with the
# plots of docs/benchmarks.md, and docs/benchmarks.json (the results with
# their date and machine, built into segpub cost). About 75 minutes on 2 cores (SQS and JetStream
# at every size), 40 GB of disk.
bench: build
	SEGPUB_DATABASE_URL=$${SEGPUB_DATABASE_URL:-$(BENCH_DB_URL)} bin/segpub bench --sizes $${SIZES:-1m,3m,10m} --plots docs/img --results docs/benchmarks.json

# The crash test: 3 workers, a push job over 1M users, 20 SIGKILLs, then
# PostgreSQL and NATS restarts. About 10 minutes. Part of make reliability.
chaos:
	$(GO) test -tags chaos -count=1 -v -timeout 50m ./internal/chaos/

# The whole fault-injection suite at full size: failpoints and database
# resets and stalls on 50,000 users, sparse audiences, SQS faults, 10,000
# jobs redelivered and replayed, stale occurrences, then the crash test. Every
# case counts its messages (expected, ok, lost, duplicated, unexpected);
# the tables of docs/reliability.md are rewritten from those counts. About
# 15 minutes on 2 cores.
RELIABILITY_OUT = $(CURDIR)/reliability-results.jsonl
reliability:
	rm -f $(RELIABILITY_OUT)
	SEGPUB_TEST_DATABASE_URL=$${SEGPUB_TEST_DATABASE_URL:-$(DB_URL)} \
	SEGPUB_TEST_NATS_URL=$${SEGPUB_TEST_NATS_URL:-$$(scripts/nats-ensure)} \
	SEGPUB_RELIABILITY_JOBS=$${SEGPUB_RELIABILITY_JOBS:-10000} \
	SEGPUB_RELIABILITY_USERS=$${SEGPUB_RELIABILITY_USERS:-50000} \
	SEGPUB_RELIABILITY_OUT=$(RELIABILITY_OUT) \
	$(GO) test -count=1 -v -timeout 30m -run 'TestFailpointsResume|TestDatabaseFaults|TestRedeliveryAndReplay|TestSparseAudience|TestInjectedFaults|TestStaleOccurrences|TestRestoredSnapshot' \
		./internal/worker ./internal/publish ./internal/sink/sqssink ./internal/scheduler
	SEGPUB_RELIABILITY_OUT=$(RELIABILITY_OUT) $(GO) test -tags chaos -count=1 -v -timeout 50m ./internal/chaos/
	$(GO) run ./cmd/reliability-report -in $(RELIABILITY_OUT) -doc docs/reliability.md
