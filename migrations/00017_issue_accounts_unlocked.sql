-- +goose Up

-- Issuing a form locks no row that every form shares (BENCH.md, "Write cost: the hot
-- accounts"). Every IssueForm writes a pending transfer from the refund expense to the
-- travellers' refund payable, and with it:
--   - the balance trigger locked a shard row of each of the two accounts (FOR UPDATE
--     SKIP LOCKED, then an UPDATE of its pending columns): two row locks, two updated
--     rows and their write-ahead-log records per form, on the two rows of the whole
--     ledger that every form, every verification and every expiry write;
--   - the foreign keys of pending_transfers.debit_account and credit_account locked the
--     two accounts' rows FOR KEY SHARE: under concurrent callers a multixact on each.
-- Both go. What they kept is still enforced by PostgreSQL:
--
-- 1. The pending layer of the accounts in ledger_derived_pending is not kept as a
--    running balance: it is the sum of their pending entries, which the journal's
--    statement-level trigger still refuses unless every transaction balances in each
--    layer, and which are append-only. The posted layer of those accounts is kept in
--    account_balances as before (it moves once per verification or settlement, not per
--    form). ledger_balances is what a reader asks for: the maintained rows plus the
--    derived pending sums. A pending amount written into account_balances for such an
--    account behind the trigger's back shows in ledger_balances, so the ledger's checks
--    (balances_match_entries, pending_matches_open_transfers) still find it.
-- 2. An account in ledger_derived_pending exists and stays: that table's foreign key
--    refers to it, and its rows are never deleted (append-only, as the journal). The
--    refund expense and payable enter it when they are created (a trigger on accounts).
-- 3. A pending transfer names existing accounts: instead of a foreign key check per
--    account, one statement-level check reads (without a lock) that each account is in
--    ledger_derived_pending or has a balance row. Both kinds of row are never deleted
--    (account_balances is now append-only too: nothing ever deleted a balance row), and
--    each keeps its account by its own foreign key, so what the check saw stays true.
--    An account with a balance row or a derived pending layer still cannot be deleted
--    (23503 on that row's foreign key), as before.

CREATE TABLE ledger_derived_pending (
    account_id integer PRIMARY KEY REFERENCES accounts
);
ALTER TABLE ledger_derived_pending OWNER TO taxrefund_owner;
CREATE TRIGGER ledger_derived_pending_append_only BEFORE UPDATE OR DELETE ON ledger_derived_pending
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_derived_pending_no_truncate BEFORE TRUNCATE ON ledger_derived_pending
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER account_balances_kept BEFORE DELETE ON account_balances
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER account_balances_no_truncate BEFORE TRUNCATE ON account_balances
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The two accounts every IssueForm writes (internal/ledger/accounts.go), now if they
-- exist and otherwise when they are created.
INSERT INTO ledger_derived_pending (account_id)
SELECT id FROM accounts WHERE code IN ('authority:refund_expense', 'travellers:refund_payable');
-- +goose StatementBegin
CREATE FUNCTION ledger_derive_pending() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO ledger_derived_pending (account_id)
    SELECT id FROM new_accounts WHERE code IN ('authority:refund_expense', 'travellers:refund_payable');
    RETURN NULL;
END $$;
-- +goose StatementEnd
ALTER FUNCTION ledger_derive_pending() OWNER TO taxrefund_owner;
CREATE TRIGGER accounts_derived_pending AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_derive_pending();
-- Their pending sums so far are their pending entries' (the ledger's check held them
-- equal); from here they are derived.
UPDATE account_balances SET pending_dr = 0, pending_cr = 0
 WHERE account_id IN (SELECT account_id FROM ledger_derived_pending) AND (pending_dr <> 0 OR pending_cr <> 0);

-- Each account's balance per layer and side: the maintained shard rows, and the pending
-- layer of the derived accounts summed from their entries. An account has several rows.
CREATE VIEW ledger_balances AS
    SELECT account_id, posted_dr, posted_cr, pending_dr, pending_cr FROM account_balances
    UNION ALL
    SELECT e.account_id, 0, 0,
           coalesce(sum(e.amount) FILTER (WHERE e.side = 'D'), 0),
           coalesce(sum(e.amount) FILTER (WHERE e.side = 'C'), 0)
      FROM journal_entries e JOIN ledger_derived_pending d ON d.account_id = e.account_id
     WHERE e.pending
     GROUP BY e.account_id;
ALTER VIEW ledger_balances OWNER TO taxrefund_owner;
-- Who reads account_balances reads this (00011); the jobs read every table.
GRANT SELECT ON ledger_balances TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT ON ledger_derived_pending TO taxrefund_jobs;

-- The balance trigger of 00009, leaving out the pending layer of the derived accounts:
-- a transaction that touches such an account only in that layer (issuing a form)
-- touches no balance row of it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_apply_entries() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.txn_id, e.pending, bool_and(t.id IS NOT NULL) AS known INTO bad
      FROM new_entries e LEFT JOIN journal_txns t ON t.id = e.txn_id
     GROUP BY e.txn_id, e.pending
    HAVING sum(e.amount) FILTER (WHERE e.side = 'D') IS DISTINCT FROM sum(e.amount) FILTER (WHERE e.side = 'C')
        OR NOT bool_and(t.id IS NOT NULL)
     LIMIT 1;
    IF FOUND THEN
        IF NOT bad.known THEN
            RAISE EXCEPTION 'journal entries of transaction %, which does not exist', bad.txn_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RAISE EXCEPTION 'journal transaction % is not balanced (pending layer: %)', bad.txn_id, bad.pending
            USING ERRCODE = 'check_violation';
    END IF;

    INSERT INTO account_balances AS b (account_id, shard, posted_dr, posted_cr, pending_dr, pending_cr)
    SELECT d.account_id, coalesce(free.shard, (txid_current() % 64)::smallint),
           d.posted_dr, d.posted_cr, d.pending_dr, d.pending_cr
      FROM (SELECT n.account_id,
                   coalesce(sum(n.amount) FILTER (WHERE NOT n.pending AND n.side = 'D'), 0) AS posted_dr,
                   coalesce(sum(n.amount) FILTER (WHERE NOT n.pending AND n.side = 'C'), 0) AS posted_cr,
                   coalesce(sum(n.amount) FILTER (WHERE n.pending AND n.side = 'D' AND x.account_id IS NULL), 0) AS pending_dr,
                   coalesce(sum(n.amount) FILTER (WHERE n.pending AND n.side = 'C' AND x.account_id IS NULL), 0) AS pending_cr
              FROM new_entries n LEFT JOIN ledger_derived_pending x ON x.account_id = n.account_id
             GROUP BY n.account_id
            HAVING bool_or(NOT n.pending) OR bool_and(x.account_id IS NULL)) d
      LEFT JOIN LATERAL (
            SELECT y.shard FROM account_balances y
             WHERE y.account_id = d.account_id
             ORDER BY y.shard
               FOR UPDATE SKIP LOCKED
             LIMIT 1) free ON true
     ORDER BY d.account_id
    ON CONFLICT (account_id, shard) DO UPDATE
       SET posted_dr  = b.posted_dr + excluded.posted_dr,
           posted_cr  = b.posted_cr + excluded.posted_cr,
           pending_dr = b.pending_dr + excluded.pending_dr,
           pending_cr = b.pending_cr + excluded.pending_cr;
    RETURN NULL;
END $$;
-- +goose StatementEnd

ALTER TABLE pending_transfers DROP CONSTRAINT pending_transfers_debit_account_fkey;
ALTER TABLE pending_transfers DROP CONSTRAINT pending_transfers_credit_account_fkey;

-- +goose StatementBegin
CREATE FUNCTION ledger_check_pending_accounts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, a.account, a.side INTO bad
      FROM new_pending n,
           LATERAL (VALUES (n.debit_account, 'debit'), (n.credit_account, 'credit')) AS a(account, side)
     WHERE NOT EXISTS (SELECT 1 FROM ledger_derived_pending d WHERE d.account_id = a.account)
       AND NOT EXISTS (SELECT 1 FROM account_balances b WHERE b.account_id = a.account)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pending transfer %: % account % has no entries', bad.id, bad.side, bad.account
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'pending_transfers_' || bad.side || '_account_fkey';
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
ALTER FUNCTION ledger_check_pending_accounts() OWNER TO taxrefund_owner;
CREATE TRIGGER pending_transfers_accounts AFTER INSERT ON pending_transfers
    REFERENCING NEW TABLE AS new_pending
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_pending_accounts();

-- +goose Down
DROP TRIGGER pending_transfers_accounts ON pending_transfers;
DROP FUNCTION ledger_check_pending_accounts();
ALTER TABLE pending_transfers ADD CONSTRAINT pending_transfers_debit_account_fkey FOREIGN KEY (debit_account) REFERENCES accounts;
ALTER TABLE pending_transfers ADD CONSTRAINT pending_transfers_credit_account_fkey FOREIGN KEY (credit_account) REFERENCES accounts;
-- The derived pending sums back into shard rows.
INSERT INTO account_balances AS b (account_id, shard, pending_dr, pending_cr)
SELECT account_id, 0, sum(pending_dr), sum(pending_cr)
  FROM ledger_balances WHERE account_id IN (SELECT account_id FROM ledger_derived_pending) GROUP BY account_id
ON CONFLICT (account_id, shard) DO UPDATE SET pending_dr = excluded.pending_dr, pending_cr = excluded.pending_cr;
DROP VIEW ledger_balances;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_apply_entries() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.txn_id, e.pending, bool_and(t.id IS NOT NULL) AS known INTO bad
      FROM new_entries e LEFT JOIN journal_txns t ON t.id = e.txn_id
     GROUP BY e.txn_id, e.pending
    HAVING sum(e.amount) FILTER (WHERE e.side = 'D') IS DISTINCT FROM sum(e.amount) FILTER (WHERE e.side = 'C')
        OR NOT bool_and(t.id IS NOT NULL)
     LIMIT 1;
    IF FOUND THEN
        IF NOT bad.known THEN
            RAISE EXCEPTION 'journal entries of transaction %, which does not exist', bad.txn_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RAISE EXCEPTION 'journal transaction % is not balanced (pending layer: %)', bad.txn_id, bad.pending
            USING ERRCODE = 'check_violation';
    END IF;

    INSERT INTO account_balances AS b (account_id, shard, posted_dr, posted_cr, pending_dr, pending_cr)
    SELECT d.account_id, coalesce(free.shard, (txid_current() % 64)::smallint),
           d.posted_dr, d.posted_cr, d.pending_dr, d.pending_cr
      FROM (SELECT account_id,
                   coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'D'), 0) AS posted_dr,
                   coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'C'), 0) AS posted_cr,
                   coalesce(sum(amount) FILTER (WHERE pending AND side = 'D'), 0) AS pending_dr,
                   coalesce(sum(amount) FILTER (WHERE pending AND side = 'C'), 0) AS pending_cr
              FROM new_entries
             GROUP BY account_id) d
      LEFT JOIN LATERAL (
            SELECT x.shard FROM account_balances x
             WHERE x.account_id = d.account_id
             ORDER BY x.shard
               FOR UPDATE SKIP LOCKED
             LIMIT 1) free ON true
     ORDER BY d.account_id
    ON CONFLICT (account_id, shard) DO UPDATE
       SET posted_dr  = b.posted_dr + excluded.posted_dr,
           posted_cr  = b.posted_cr + excluded.posted_cr,
           pending_dr = b.pending_dr + excluded.pending_dr,
           pending_cr = b.pending_cr + excluded.pending_cr;
    RETURN NULL;
END $$;
-- +goose StatementEnd
DROP TRIGGER account_balances_no_truncate ON account_balances;
DROP TRIGGER account_balances_kept ON account_balances;
DROP TRIGGER accounts_derived_pending ON accounts;
DROP FUNCTION ledger_derive_pending();
DROP TABLE ledger_derived_pending;
