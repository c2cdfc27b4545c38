-- +goose Up

-- A month's reconciliation reads that month, not all of history (internal/report/
-- reconcile.go; BENCH.md, "Console"). Its confirmations side and its CONFIRMED_UNPAID and
-- VOIDED_AFTER_CONFIRMATION exceptions select the forms customs confirmed in the month:
-- a range of verified_at. A B-tree, not a block range index as 00016's: a form's row is
-- rewritten where free space is when it is confirmed, so the rows of one month's
-- confirmations are not together on disk. Partial: an issued form (no verified_at yet)
-- adds no entry; a confirmation adds one (its update already changes an indexed column,
-- state, so it was never a heap-only update).
CREATE INDEX forms_verified_at ON forms (verified_at) WHERE verified_at IS NOT NULL;

-- The trial balance at the end of a month is the maintained posted balances less the
-- entries of the transactions dated after it: those transactions by their date. A block
-- range index, as 00016's: transactions are written on or about the day they are dated.
CREATE INDEX journal_txns_effective_month ON journal_txns USING brin (effective_date) WITH (pages_per_range = 32, autosummarize = on);

-- +goose Down
DROP INDEX journal_txns_effective_month;
DROP INDEX forms_verified_at;
