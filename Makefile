# Everyday commands. PostgreSQL comes from cmd/pgenv: DATABASE_URL if set,
# else a server on 127.0.0.1:5432, else a private cluster in .data/pg (see
# README.md, "Where the database comes from").

# Go 1.27.3: the standard library of the machines' Go 1.26.8 has known vulnerabilities
# (crypto/x509, crypto/tls, net/http; `make vulncheck` lists them with GOTOOLCHAIN=local).
# The go command fetches this toolchain from the module proxy once (about 76 MB).
# `make GOTOOLCHAIN=local ...` overrides it.
GOTOOLCHAIN := go1.27.3
export GOTOOLCHAIN

# help lists the targets: a "#> target: what it does" line above each target. A bare
# `make` is `make run`.
.DEFAULT_GOAL := run
#> help: list the targets with one line each
help:
	@sed -n 's/^#> \([^:]*\): /\1\t/p' $(MAKEFILE_LIST) | awk -F'\t' '{ printf "  %-16s %s\n", $$1, $$2 }'

BIN := .data/bin
PGENV := $(BIN)/pgenv
TAXREFUND := $(BIN)/taxrefund
# Generated code and the sources `make generate` rewrites.
GENERATED := api internal/db proto

# Debian packages the tests and `make ha` start for real (README, "Prerequisites"):
# Patroni and etcd for the HA cluster, Chromium for the console's browser tests,
# poppler and zbar to read printed forms back, promtool (prometheus) for the alert
# rules, Noto CJK for the PDFs. `make deps` installs the missing ones when run as root
# (one `apt-get update`, then `apt-get install`), and otherwise says what to install.
DEB_PACKAGES := patroni python3-etcd etcd-server chromium poppler-utils zbar-tools prometheus fonts-noto-cjk fonts-dejavu-core

.PHONY: help bench-cost bench-immediate bench-flood bench-console check-deploy run test deps generate check-generate bench bench-growth bench-build lint clean-data pgenv fuzz vulncheck ha ha-stop test-ha bench-ha

#> run: build, migrate, seed demo data, make dev certificates and keys, serve on 127.0.0.1:50051 (console https://127.0.0.1:50443)
run: pgenv
	go build -o $(TAXREFUND) ./cmd/taxrefund
	$(PGENV) -db taxrefund -- sh -c '$(TAXREFUND) migrate && $(TAXREFUND) seed && $(TAXREFUND) certs && $(TAXREFUND) keys && $(TAXREFUND) seed -demo-forms && exec $(TAXREFUND) serve -console-addr 127.0.0.1:50443 -traveller-addr 127.0.0.1:50444'

#> test: install missing Debian packages, check generated code and alert rules, go vet, all tests against PostgreSQL
test: deps check-generate check-deploy pgenv
	go vet ./...
	$(PGENV) -db taxrefund_test -- go test -count=1 -p 2 -timeout 20m ./...

# The high-availability layout on this machine (OPERATIONS.md, "High availability"): etcd,
# three PostgreSQL nodes under Patroni with a synchronous standby, two taxrefund servers
# whose pools follow the primary. Data, configuration (from deploy/patroni and deploy/etcd),
# logs and pid files under $(HA_DIR); PostgreSQL on HA_BASE_PORT..+2, Patroni's REST API
# on +3..+5, etcd on +10, taxrefund on +20 and +21.
HA_DIR ?= .data/ha
HA_BASE_PORT ?= 52110
#> ha: start etcd, three PostgreSQL nodes under Patroni and two taxrefund servers (stop: make ha-stop)
ha: deps
	go build -o $(TAXREFUND) ./cmd/taxrefund
	go build -o $(BIN)/hacluster ./cmd/hacluster
	$(BIN)/hacluster start -dir $(HA_DIR) -base-port $(HA_BASE_PORT) -taxrefund $(TAXREFUND)

#> ha-stop: stop exactly what `make ha` started (its pid files, its nodes' postmasters)
ha-stop:
	go build -o $(BIN)/hacluster ./cmd/hacluster
	$(BIN)/hacluster stop -dir $(HA_DIR)

#> test-ha: the failover test alone: faults under load, no acknowledged write lost (BENCH.md)
test-ha: deps
	go test -count=1 -v -timeout 20m -run 'TestFailover' ./internal/hacluster

#> check-deploy: check the Prometheus alerting rules and run their unit tests (promtool)
check-deploy:
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

#> generate: regenerate the protobuf and sqlc code
generate:
	go tool buf format -w
	go tool buf lint
	go tool buf generate
	go tool sqlc generate -f internal/db/sqlc.yaml

# check-generate fails when `make generate` changes any file under
# $(GENERATED): the committed generated code is stale. It compares checksums
# before and after rather than asking git, so it needs no git checkout and
# does not trip over work you have regenerated but not yet committed.
FINGERPRINT = find $(GENERATED) -type f -exec cksum {} + 2>/dev/null | LC_ALL=C sort -k 3
#> check-generate: fail when `make generate` would change the committed generated code
check-generate:
	@mkdir -p .data
	@$(FINGERPRINT) >.data/generated.before
	@$(MAKE) --no-print-directory generate
	@$(FINGERPRINT) >.data/generated.after
	@if ! cmp -s .data/generated.before .data/generated.after; then \
		echo 'check-generate: generated code is stale; `make generate` changed:' >&2; \
		diff .data/generated.before .data/generated.after | sed -n 's/^[<>] [0-9]* [0-9]* /  /p' | sort -u >&2; \
		echo 'Commit the regenerated files.' >&2; \
		exit 1; \
	fi

# Benchmarks (BENCH.md): `make bench` measures IssueForm and the desk mix against pgbench
# baselines taken in the same run (IssueForm against the floor, the minimal write of a
# form's facts on a database of its own, and against the project's own rows; the desk mix
# against a whole visit, and for comparison against a settlement alone); `make bench-growth` measures IssueForm at growing
# numbers of existing forms. Each starts from a fresh database (dropped and created by
# `loadgen reset-db`, which touches only taxrefund_bench* databases) and keeps its files in
# $(BENCH_DIR). Override e.g. `make bench BENCH_DURATION=60s`; BENCH_ROUNDS=3 alternates
# baseline and service three times and reports the median round, steadier on a busy machine.
LOADGEN := $(BIN)/loadgen
BENCH_DIR := .data/bench
BENCH_DB ?= taxrefund_bench
BENCH_ADDR ?= 127.0.0.1:50151
BENCH_DEBUG_ADDR ?= 127.0.0.1:50152
BENCH_METRICS_ADDR ?= 127.0.0.1:50153
# bench-flood's server flags: none, the target is the default admission (e.g.
# BENCH_FLOOD_FLAGS='-party-share 64 -party-wait 0' for the admission without fair shares).
BENCH_FLOOD_FLAGS ?=
BENCH_CONCURRENCY ?= 64
BENCH_WARMUP ?= 5s
BENCH_DURATION ?= 20s
BENCH_STORES ?= 500
BENCH_ROUNDS ?= 1
BENCH_REPORT_CONCURRENCY ?= 4
BENCH_GROWTH ?= 0 1000000 5000000
BENCH_REPORT_MONTH ?= 2026-01
BENCH_REPORT_FORMS ?= 100000
BENCH_OTHER_MONTHS ?= 2025-01,2025-02,2025-03,2025-04,2025-05,2025-06,2025-07,2025-08,2025-09,2025-10,2025-11,2025-12
BENCH_CERTS = -cert-dir $(BENCH_DIR)/certs
BENCH_KEYS = -pii-keys $(BENCH_DIR)/pii.keys
BENCH_JOURNAL = -journal-key $(BENCH_DIR)/journal.key -journal-pubkeys $(BENCH_DIR)/journal.pub
BENCH_LOAD = -concurrency $(BENCH_CONCURRENCY) -warmup $(BENCH_WARMUP) -duration $(BENCH_DURATION)
BENCH_BASELINE = $(LOADGEN) baseline -work-dir $(BENCH_DIR) -stores $(BENCH_STORES) $(BENCH_LOAD)
# The per-form counts (rows, index entries, FK checks, trigger calls, WAL): one caller for a
# few seconds, after the throughput rounds; each waits 11 s before and after for
# PostgreSQL's statistics to settle (about 75 s in all).
BENCH_COST = -cost -label cost -concurrency 1 -warmup 0s -duration 4s
BENCH_RUN = $(LOADGEN) run -addr $(BENCH_ADDR) $(BENCH_CERTS) -stores $(BENCH_STORES) $(BENCH_LOAD) -server-pid $$pid
# The common start (shell): a fresh database with the schema, demo data, certificates and
# bench stores; then the server in the background (without the cap on connections from
# one address: the load generator is every bench store at once, a connection each, from
# 127.0.0.1; with the default cap of 64 most of its calls failed UNAVAILABLE), stopped when the shell exits, whether
# the benchmark finished, failed or was interrupted.
BENCH_START = $(LOADGEN) reset-db; rm -f $(BENCH_DIR)/checkpoints.log; \
	$(TAXREFUND) migrate; $(TAXREFUND) seed; \
	$(TAXREFUND) certs $(BENCH_CERTS) $(BENCH_KEYS) >/dev/null; \
	$(TAXREFUND) keys $(BENCH_JOURNAL) >/dev/null; \
	$(LOADGEN) setup $(BENCH_CERTS) -stores $(BENCH_STORES); \
	$(TAXREFUND) serve -addr $(BENCH_ADDR) -debug-addr $(BENCH_DEBUG_ADDR) -metrics-addr $(BENCH_METRICS_ADDR) -max-conns-per-addr 0 $(BENCH_SERVE_FLAGS) $(BENCH_CERTS) $(BENCH_KEYS) $(BENCH_JOURNAL) -checkpoints $(BENCH_DIR)/checkpoints.log 2>$(BENCH_DIR)/server.log & pid=$$!; \
	trap "kill $$pid 2>/dev/null; wait $$pid 2>/dev/null" EXIT; trap "exit 130" INT TERM; \
	echo "bench: server pid $$pid on $(BENCH_ADDR), log in $(BENCH_DIR)/server.log"

# The write-cost benchmarks serve without the periodic chain and invariant check: it reads
# all history, not the calls' writes, so a round (seconds at a few hundred thousand forms,
# minutes at millions) lands in whichever window it meets, baseline or service, and moved
# the desk visits by a third (BENCH.md, "The periodic check as history grows").
BENCH_WRITE_FLAGS = -check-interval 0
#> bench: load benchmarks against pgbench baselines (BENCH.md)
bench: BENCH_SERVE_FLAGS = $(BENCH_WRITE_FLAGS)
bench: bench-build
	@rm -f $(BENCH_DIR)/floor-*.json $(BENCH_DIR)/issue-*.json $(BENCH_DIR)/desk-*.json $(BENCH_DIR)/settle-*.json $(BENCH_DIR)/immediate-*.json $(BENCH_DIR)/report-*.json $(BENCH_DIR)/cost-*.json
	$(PGENV) -db $(BENCH_DB) -- sh -ec '$(BENCH_START); \
		r=1; while [ $$r -le $(BENCH_ROUNDS) ]; do \
			$(BENCH_BASELINE) -scenario floor -json $(BENCH_DIR)/floor-$$r-baseline.json; \
			$(BENCH_BASELINE) -scenario issue -json $(BENCH_DIR)/issue-$$r-baseline.json; \
			$(BENCH_RUN) -scenario issue -json $(BENCH_DIR)/issue-$$r-service.json; \
			r=$$((r + 1)); \
		done; \
		$(BENCH_BASELINE) -scenario floor $(BENCH_COST) -json $(BENCH_DIR)/cost-floor.json; \
		$(BENCH_BASELINE) -scenario issue $(BENCH_COST) -json $(BENCH_DIR)/cost-issue-baseline.json; \
		$(BENCH_RUN) -scenario issue $(BENCH_COST) -json $(BENCH_DIR)/cost-issue-service.json; \
		r=1; while [ $$r -le $(BENCH_ROUNDS) ]; do \
			$(BENCH_BASELINE) -scenario desk -hint $(BENCH_DIR)/issue-1-baseline.json -json $(BENCH_DIR)/desk-$$r-baseline.json; \
			$(BENCH_BASELINE) -scenario settle -hint $(BENCH_DIR)/issue-1-baseline.json -json $(BENCH_DIR)/settle-$$r-baseline.json; \
			$(BENCH_RUN) -scenario desk -hint $(BENCH_DIR)/issue-1-service.json -json $(BENCH_DIR)/desk-$$r-service.json; \
			r=$$((r + 1)); \
		done; \
		$(BENCH_BASELINE) -scenario immediate -json $(BENCH_DIR)/immediate-baseline.json; \
		$(BENCH_RUN) -scenario immediate -json $(BENCH_DIR)/immediate-service.json; \
		$(BENCH_RUN) -scenario report -concurrency $(BENCH_REPORT_CONCURRENCY) -json $(BENCH_DIR)/report-service.json; \
		$(LOADGEN) check; \
		echo; $(LOADGEN) report $(BENCH_DIR)/floor-*.json $(BENCH_DIR)/issue-*.json $(BENCH_DIR)/cost-*.json $(BENCH_DIR)/desk-*.json $(BENCH_DIR)/settle-*.json \
			$(BENCH_DIR)/immediate-*.json $(BENCH_DIR)/report-*.json'

#> bench-cost: the per-form write counts alone (floor, own baseline, IssueForm; one caller, ~2 minutes; BENCH.md)
bench-cost: BENCH_SERVE_FLAGS = $(BENCH_WRITE_FLAGS)
bench-cost: bench-build
	@rm -f $(BENCH_DIR)/cost-*.json
	$(PGENV) -db $(BENCH_DB) -- sh -ec '$(BENCH_START); \
		$(BENCH_BASELINE) -scenario floor $(BENCH_COST) -json $(BENCH_DIR)/cost-floor.json; \
		$(BENCH_BASELINE) -scenario issue $(BENCH_COST) -json $(BENCH_DIR)/cost-issue-baseline.json; \
		$(BENCH_RUN) -scenario issue $(BENCH_COST) -json $(BENCH_DIR)/cost-issue-service.json; \
		$(LOADGEN) check; \
		echo; $(LOADGEN) report $(BENCH_DIR)/cost-*.json'

#> bench-immediate: immediate refunds against their own pgbench baseline, alone (BENCH.md)
bench-immediate: BENCH_SERVE_FLAGS = $(BENCH_WRITE_FLAGS)
bench-immediate: bench-build
	@rm -f $(BENCH_DIR)/immediate-*.json
	$(PGENV) -db $(BENCH_DB) -- sh -ec '$(BENCH_START); \
		r=1; while [ $$r -le $(BENCH_ROUNDS) ]; do \
			$(BENCH_BASELINE) -scenario immediate -json $(BENCH_DIR)/immediate-$$r-baseline.json; \
			$(BENCH_RUN) -scenario immediate -json $(BENCH_DIR)/immediate-$$r-service.json; \
			r=$$((r + 1)); \
		done; \
		$(LOADGEN) check; \
		echo; $(LOADGEN) report $(BENCH_DIR)/immediate-*.json'

#> bench-flood: 63 stores' IssueForm p99 alone and while one more store floods (BENCH.md).
bench-flood: BENCH_SERVE_FLAGS = $(BENCH_FLOOD_FLAGS)
bench-flood: bench-build
	@rm -f $(BENCH_DIR)/flood-*.json
	$(PGENV) -db $(BENCH_DB) -- sh -ec '$(BENCH_START); \
		r=1; while [ $$r -le $(BENCH_ROUNDS) ]; do \
			$(BENCH_RUN) -scenario flood -json $(BENCH_DIR)/flood-$$r.json; \
			r=$$((r + 1)); \
		done'

#> bench-growth: IssueForm, and one month's report, at growing numbers of forms of other months (BENCH.md)
# The report month holds BENCH_REPORT_FORMS forms; each step adds forms of
# BENCH_OTHER_MONTHS until the others number n of BENCH_GROWTH. The server runs without
# the expiry job (the filled forms of past months are overdue) and without the periodic
# chain and invariant check, which reads all history: at 5M forms a round takes minutes
# and would land in the windows (BENCH.md, "The periodic check as history grows").
bench-growth: BENCH_SERVE_FLAGS = -expiry-interval 0 -check-interval 0
bench-growth: bench-build
	@rm -f $(BENCH_DIR)/growth-*.json
	$(PGENV) -db $(BENCH_DB)_growth -- sh -ec '$(BENCH_START); \
		$(LOADGEN) fill -month $(BENCH_REPORT_MONTH) -total $(BENCH_REPORT_FORMS) -stores $(BENCH_STORES) $(BENCH_KEYS); \
		for n in $(BENCH_GROWTH); do \
			$(LOADGEN) fill -month $(BENCH_OTHER_MONTHS) -total $$(($(BENCH_REPORT_FORMS) + n)) -stores $(BENCH_STORES) $(BENCH_KEYS); \
			r=1; while [ $$r -le $(BENCH_ROUNDS) ]; do \
				$(BENCH_RUN) -scenario report -month $(BENCH_REPORT_MONTH) -label $$n -concurrency 1 -json $(BENCH_DIR)/growth-$$n-$$r-report.json; \
				$(BENCH_BASELINE) -scenario issue -label $$n -json $(BENCH_DIR)/growth-$$n-$$r-baseline.json; \
				$(BENCH_RUN) -scenario issue -label $$n -json $(BENCH_DIR)/growth-$$n-$$r-service.json; \
				r=$$((r + 1)); \
			done; \
		done; \
		$(LOADGEN) check; \
		echo; $(LOADGEN) report $(foreach n,$(BENCH_GROWTH),$(BENCH_DIR)/growth-$(n)-*.json)'

#> bench-console: each officials' console page's render time over HTTPS, p50/p95, with a month of BENCH_CONSOLE_FORMS forms (BENCH.md)
# The month (BENCH_REPORT_MONTH) is filled by `loadgen fill`, as bench-growth fills it;
# one official then renders the pages in turn for BENCH_CONSOLE_DURATION.
BENCH_CONSOLE_FORMS ?= 100000
BENCH_CONSOLE_DURATION ?= 60s
BENCH_CONSOLE_ADDR ?= 127.0.0.1:50154
# A page slower than this counts as failed (and its time is not in the percentiles).
BENCH_CONSOLE_TIMEOUT ?= 60s
bench-console: BENCH_SERVE_FLAGS = -expiry-interval 0 -console-addr $(BENCH_CONSOLE_ADDR)
bench-console: bench-build
	$(PGENV) -db $(BENCH_DB)_console -- sh -ec '$(BENCH_START); \
		$(LOADGEN) fill -month $(BENCH_REPORT_MONTH) -total $(BENCH_CONSOLE_FORMS) -stores $(BENCH_STORES) $(BENCH_KEYS); \
		$(BENCH_RUN) -scenario console -month $(BENCH_REPORT_MONTH) -label $(BENCH_CONSOLE_FORMS) -concurrency 1 -duration $(BENCH_CONSOLE_DURATION) -timeout $(BENCH_CONSOLE_TIMEOUT) \
			-json $(BENCH_DIR)/console-$(BENCH_CONSOLE_FORMS).json'

# bench-ha: IssueForm throughput on the HA cluster (three nodes under Patroni, a
# synchronous standby, fsync on) divided by a single node (pgenv's PostgreSQL), in the same
# run, with the same load: the price of synchronous replication on one machine. It uses
# make ha's ports (stop `make ha` first) and its own directory, stopped at the end.
BENCH_HA_DIR := .data/bench-ha
BENCH_HA_OPS = tr , "\n" <$(1) | grep ops_per_s | head -1 | tr -dc 0-9.
# The load generator holds a connection per bench store, all from one address: no cap.
BENCH_HA_SERVE_FLAGS = -max-conns-per-addr 0
#> bench-ha: IssueForm on the HA cluster ÷ a single node, same run (BENCH.md)
bench-ha: BENCH_SERVE_FLAGS = $(BENCH_HA_SERVE_FLAGS)
bench-ha: bench-build deps
	go build -o $(BIN)/hacluster ./cmd/hacluster
	@rm -f $(BENCH_DIR)/ha-*.json
	$(BIN)/hacluster stop -dir $(BENCH_HA_DIR) >/dev/null; rm -rf $(BENCH_HA_DIR)
	$(PGENV) -db $(BENCH_DB) -- sh -ec '$(BENCH_START); \
		$(BENCH_RUN) -scenario issue -label single-node -json $(BENCH_DIR)/ha-single.json; \
		kill $$pid; wait $$pid || true; \
		trap "$(BIN)/hacluster stop -dir $(BENCH_HA_DIR)" EXIT; \
		$(BIN)/hacluster start -dir $(BENCH_HA_DIR) -base-port $(HA_BASE_PORT) -taxrefund $(TAXREFUND) -servers 1 -serve-args "$(BENCH_HA_SERVE_FLAGS)"; \
		DATABASE_URL="$$($(BIN)/hacluster url -base-port $(HA_BASE_PORT))"; export DATABASE_URL; \
		$(LOADGEN) setup -cert-dir $(BENCH_HA_DIR)/certs -stores $(BENCH_STORES); \
		$(LOADGEN) run -addr 127.0.0.1:$$(($(HA_BASE_PORT) + 20)) -cert-dir $(BENCH_HA_DIR)/certs -stores $(BENCH_STORES) $(BENCH_LOAD) \
			-server-pid $$(cat $(BENCH_HA_DIR)/pids/taxrefund1.pid) -scenario issue -label ha-sync-standby -json $(BENCH_DIR)/ha-cluster.json; \
		echo; $(LOADGEN) report $(BENCH_DIR)/ha-single.json $(BENCH_DIR)/ha-cluster.json; \
		single=$$($(call BENCH_HA_OPS,$(BENCH_DIR)/ha-single.json)); ha=$$($(call BENCH_HA_OPS,$(BENCH_DIR)/ha-cluster.json)); \
		echo; echo "IssueForm: single node $$single/s, HA cluster $$ha/s, HA / single = $$(awk -v a=$$ha -v b=$$single "BEGIN { printf \"%.2f\", a / b }")"'

#> bench-build: build the server and load generator for the benchmarks
bench-build: pgenv
	go build -o $(TAXREFUND) ./cmd/taxrefund
	go build -o $(LOADGEN) ./cmd/loadgen
	@mkdir -p $(BENCH_DIR)

#> lint: go vet and gofmt
lint:
	go vet ./...
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed:" >&2; echo "$$files" >&2; exit 1; fi

# vulncheck runs govulncheck on every package, against the Go vulnerability database
# pinned in internal/vulncheck/go.mod (golang.org/x/vulndb, indexed into $(VULNDB) once per
# version), so it needs no access to vuln.go.dev; `make vulncheck VULNDB_URL=https://vuln.go.dev`
# asks the live database instead. It fails when a vulnerability reaches our code.
VULNDB := .data/vulndb
VULNDB_URL ?= file://$(CURDIR)/$(VULNDB)
#> vulncheck: govulncheck against the pinned Go vulnerability database
vulncheck:
	@cd internal/vulncheck && ver=$$(go list -m -f '{{.Version}}' golang.org/x/vulndb) && \
	if [ "$$(cat $(CURDIR)/$(VULNDB).version 2>/dev/null)" != "$$ver" ]; then \
		echo "vulncheck: indexing golang.org/x/vulndb $$ver into $(VULNDB)"; \
		rm -rf $(CURDIR)/$(VULNDB) && \
		go mod download golang.org/x/vulndb && \
		dir=$$(go list -m -f '{{.Dir}}' golang.org/x/vulndb) && \
		if [ ! -d "$$dir/data/osv" ]; then echo "vulncheck: golang.org/x/vulndb $$ver has no data/osv (module dir: '$$dir')" >&2; exit 1; fi && \
		go tool indexdb -vulns "$$dir/data/osv" -out $(CURDIR)/$(VULNDB) && \
		echo "$$ver" >$(CURDIR)/$(VULNDB).version; \
	fi
	cd internal/vulncheck && go tool govulncheck -C $(CURDIR) -db $(VULNDB_URL) ./...

# clean-data stops the private cluster, if running, and deletes .data/: the
# cluster and its databases, dev certificates, PII keys and built binaries. On another
# server (DATABASE_URL, 127.0.0.1:5432) it first drops the databases pgenv created there,
# and refuses if one it did not create holds forms, whose keys it would delete.
#> clean-data: delete .data/ (private cluster, certificates, PII keys); drops the databases pgenv made elsewhere
clean-data:
	go run ./cmd/pgenv -clean taxrefund taxrefund_test
	rm -rf .data

#> deps: install the Debian packages the tests start (as root; otherwise says what to install)
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "deps: install these (Debian package names): $$missing" >&2; exit 1; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "deps: missing Debian packages; run: sudo apt-get install -y --no-install-recommends $$missing" >&2; exit 1; fi; \
	echo "deps: installing $$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

# pgenv is built rather than started with `go run`, which neither passes
# SIGTERM on nor keeps the command's exit code.
#> pgenv: build cmd/pgenv, which finds or starts PostgreSQL
pgenv:
	go build -o $(PGENV) ./cmd/pgenv

# fuzz runs every fuzz target for FUZZTIME each (default 30s). CI runs them briefly with
# a count (FUZZTIME=20000x): a time limit sometimes ends a run with a spurious "context
# deadline exceeded". Their seed corpora also run as ordinary tests in `make test`.
FUZZTIME ?= 30s
#> fuzz: run every fuzz target for FUZZTIME (default 30s)
fuzz:
	go test -run '^$$' -fuzz '^FuzzParsePositive$$' -fuzztime $(FUZZTIME) ./internal/money
	go test -run '^$$' -fuzz '^FuzzNormalizeNumber$$' -fuzztime $(FUZZTIME) ./internal/pii
	go test -run '^$$' -fuzz '^FuzzParseURI$$' -fuzztime $(FUZZTIME) ./internal/auth
	go test -run '^$$' -fuzz '^FuzzIssueFormValidation$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzIssueFormDecode$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzIssueFormRefusalText$$' -fuzztime $(FUZZTIME) ./internal/wire
	go test -run '^$$' -fuzz '^FuzzAmountField$$' -fuzztime $(FUZZTIME) ./internal/wire
