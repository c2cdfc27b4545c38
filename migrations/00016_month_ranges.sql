-- +goose Up

-- The monthly report reads one month, not all of history (BENCH.md, "Write cost: the
-- floor"; internal/report/monthly.go): the forms issued in the month by their purchase
-- date, the payouts made in it by their paid date. Block range indexes: both columns
-- follow the order rows are written in (a form is issued on or soon after its purchase
-- day, a payout is written on the day it is paid), so a few ranges per month hold them,
-- and a BRIN index costs a write almost nothing (no entry per row, unlike a B-tree: the
-- write cost per form is what this index must not raise). A range is summarized by
-- VACUUM (autovacuum) or autosummarize; until then the report reads its pages, the
-- newest ones.
CREATE INDEX forms_purchase_month ON forms USING brin (purchase_date) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX payouts_paid_month ON payouts USING brin (paid_date) WITH (pages_per_range = 32, autosummarize = on);

-- +goose Down
DROP INDEX payouts_paid_month;
DROP INDEX forms_purchase_month;
