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

-- A form's store and block without a lock on either (BENCH.md, "Write cost: the floor").
-- The foreign keys of forms.store_code and forms.block_code locked the store's row and
-- one of the two blocks' rows (FOR KEY SHARE) in every IssueForm: a write-ahead-log
-- record each and, under concurrent callers, multixacts on two rows every form shares.
-- The facts they kept stay enforced by PostgreSQL:
--   - forms_check_store (BEFORE INSERT, 00002) already reads the store, refuses a form of
--     an unknown or inactive store, and sets the form's block from the store's, which
--     stores' own foreign key keeps a real block;
--   - a form's store and block never change (below), nor does a store's or a block's
--     code, and neither a store nor a block is ever deleted (below): a store exits by its
--     status. So what the insert saw stays true without holding a lock on it.
ALTER TABLE forms DROP CONSTRAINT forms_store_code_fkey;
ALTER TABLE forms DROP CONSTRAINT forms_block_code_fkey;

-- +goose StatementBegin
CREATE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted nor their code changed (forms refer to them): % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
-- +goose StatementEnd
CREATE TRIGGER stores_kept BEFORE DELETE OR UPDATE OF code ON stores
    FOR EACH ROW EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER stores_no_truncate BEFORE TRUNCATE ON stores
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER blocks_kept BEFORE DELETE OR UPDATE OF code ON blocks
    FOR EACH ROW EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER blocks_no_truncate BEFORE TRUNCATE ON blocks
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();

-- +goose StatementBegin
CREATE FUNCTION forms_keep_store() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a form''s store and block never change (form %)', OLD.number
        USING ERRCODE = 'restrict_violation';
END $$;
-- +goose StatementEnd
-- AFTER, so that a party moving its form elsewhere is refused by row-level security first
-- (00008), as before; the trigger catches what that lets through (the owner).
CREATE TRIGGER forms_store_kept AFTER UPDATE OF store_code, block_code ON forms
    FOR EACH ROW WHEN (NEW.store_code IS DISTINCT FROM OLD.store_code OR NEW.block_code IS DISTINCT FROM OLD.block_code)
    EXECUTE FUNCTION forms_keep_store();
-- Owned as every function is (00011).
ALTER FUNCTION refuse_removal() OWNER TO taxrefund_owner;
ALTER FUNCTION forms_keep_store() OWNER TO taxrefund_owner;

-- +goose Down
DROP TRIGGER forms_store_kept ON forms;
DROP FUNCTION forms_keep_store();
DROP TRIGGER blocks_no_truncate ON blocks;
DROP TRIGGER blocks_kept ON blocks;
DROP TRIGGER stores_no_truncate ON stores;
DROP TRIGGER stores_kept ON stores;
DROP FUNCTION refuse_removal();
ALTER TABLE forms ADD CONSTRAINT forms_block_code_fkey FOREIGN KEY (block_code) REFERENCES blocks;
ALTER TABLE forms ADD CONSTRAINT forms_store_code_fkey FOREIGN KEY (store_code) REFERENCES stores;
DROP INDEX payouts_paid_month;
DROP INDEX forms_purchase_month;
