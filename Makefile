# Everyday commands. PostgreSQL comes from cmd/pgenv: DATABASE_URL if set,
# else a server on 127.0.0.1:5432, else a private cluster in .data/pg (see
# README.md, "Where the database comes from").

BIN := .data/bin
PGENV := $(BIN)/pgenv
TAXREFUND := $(BIN)/taxrefund
# Generated code and the sources `make generate` rewrites.
GENERATED := api internal/db proto

.PHONY: run test generate check-generate bench lint clean-data pgenv

run: pgenv
	go build -o $(TAXREFUND) ./cmd/taxrefund
	$(PGENV) -db taxrefund -- sh -c '$(TAXREFUND) migrate && $(TAXREFUND) seed && $(TAXREFUND) certs && exec $(TAXREFUND) serve'

test: check-generate pgenv
	go vet ./...
	$(PGENV) -db taxrefund_test -- go test -count=1 -p 2 -timeout 20m ./...

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

# Placeholder: the benchmark suite replaces this.
bench: pgenv
	$(PGENV) -db taxrefund_bench -- go test -run '^$$' -bench . -benchmem ./...

lint:
	go vet ./...
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed:" >&2; echo "$$files" >&2; exit 1; fi

# clean-data stops the private cluster, if running, and deletes .data/: the
# cluster and its databases, dev certificates and built binaries.
clean-data:
	go run ./cmd/pgenv -stop
	rm -rf .data

# pgenv is built rather than started with `go run`, which neither passes
# SIGTERM on nor keeps the command's exit code.
pgenv:
	go build -o $(PGENV) ./cmd/pgenv
