-- +goose Up

-- What each money write costs PostgreSQL (BENCH.md, "Where the time goes"; issue #4).
-- Nothing here weakens a rule: every statement still refuses an unbalanced transaction,
-- balances stay the sum of the entries, the journal stays append-only.

-- The balance trigger, cheaper per write and without lock queues:
--
-- * Each transaction folds its entries into a shard row of the account that no other
--   transaction holds (FOR UPDATE SKIP LOCKED), instead of the shard pg_backend_pid() % 16:
--   two of the pool's connections whose pids fell on the same shard queued on that row of
--   every hot account (the refund expense, the refund payable) until commit (~7% of the
--   samples in BENCH.md). Only when every shard row of the account is held does it take
--   (or create) the shard txid % 64, and wait if another transaction holds that one. An
--   account thus has about as many shard rows as transactions ever wrote it at once, at
--   most 64; its balance is still the sum of its shard rows.
--
-- * The journal_entries foreign keys are dropped (below); the trigger keeps both facts:
--   - txn_id: the same pass that checks the balance joins each transaction to its header,
--     and refuses (foreign_key_violation) entries of a transaction that does not exist.
--     The row lock a foreign key check takes is not needed: journal_txns is append-only
--     (its triggers refuse UPDATE, DELETE and TRUNCATE), so a header once seen stays.
--   - account_id: every entry's account gets its balance row upserted in the same
--     statement. A new shard row is checked by account_balances' own foreign key to
--     accounts; an existing one exists only for an account that existed when that row was
--     inserted, and that foreign key (NO ACTION) keeps the account from being deleted or
--     its id changed since.
--   One statement-level pass replaces two SPI look-ups (each locking a hot row FOR KEY
--   SHARE) per entry: the foreign key checks were about a quarter of PostgreSQL's time in
--   the desk mix (BENCH.md).
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_txn_id_fkey;
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_account_id_fkey;
ALTER TABLE account_balances DROP CONSTRAINT account_balances_shard_check;
ALTER TABLE account_balances ADD CONSTRAINT account_balances_shard_check CHECK (shard BETWEEN 0 AND 63);

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

-- The desk's agency, as row-level security on payouts asks for it (00008). As a SQL
-- function it was planned afresh at every call: at every planning of a statement on
-- payouts or forms (the planner evaluates it to estimate the policy's selectivity) and
-- at every execution. PL/pgSQL keeps the plan of its query for the session.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION party_desk_agency() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    IF party_role() <> 'desk' THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT agency_code FROM desks WHERE code = party_code());
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION party_desk_agency() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT agency_code FROM desks WHERE party_role() = 'desk' AND code = party_code()
$$;
-- +goose StatementEnd
-- Shards 16 to 63 folded back into 0 to 15, so that the old check holds again.
INSERT INTO account_balances AS b (account_id, shard, posted_dr, posted_cr, pending_dr, pending_cr)
SELECT account_id, shard % 16, sum(posted_dr), sum(posted_cr), sum(pending_dr), sum(pending_cr)
  FROM account_balances WHERE shard > 15 GROUP BY account_id, shard % 16
ON CONFLICT (account_id, shard) DO UPDATE
   SET posted_dr  = b.posted_dr + excluded.posted_dr,
       posted_cr  = b.posted_cr + excluded.posted_cr,
       pending_dr = b.pending_dr + excluded.pending_dr,
       pending_cr = b.pending_cr + excluded.pending_cr;
DELETE FROM account_balances WHERE shard > 15;
ALTER TABLE account_balances DROP CONSTRAINT account_balances_shard_check;
ALTER TABLE account_balances ADD CONSTRAINT account_balances_shard_check CHECK (shard BETWEEN 0 AND 15);
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_txn_id_fkey FOREIGN KEY (txn_id) REFERENCES journal_txns;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_apply_entries() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT txn_id, pending INTO bad
      FROM new_entries
     GROUP BY txn_id, pending
    HAVING sum(amount) FILTER (WHERE side = 'D') IS DISTINCT FROM sum(amount) FILTER (WHERE side = 'C')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal transaction % is not balanced (pending layer: %)', bad.txn_id, bad.pending
            USING ERRCODE = 'check_violation';
    END IF;

    INSERT INTO account_balances AS b (account_id, shard, posted_dr, posted_cr, pending_dr, pending_cr)
    SELECT account_id,
           pg_backend_pid() % 16,
           coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'D'), 0),
           coalesce(sum(amount) FILTER (WHERE NOT pending AND side = 'C'), 0),
           coalesce(sum(amount) FILTER (WHERE pending AND side = 'D'), 0),
           coalesce(sum(amount) FILTER (WHERE pending AND side = 'C'), 0)
      FROM new_entries
     GROUP BY account_id
     ORDER BY account_id
    ON CONFLICT (account_id, shard) DO UPDATE
       SET posted_dr  = b.posted_dr + excluded.posted_dr,
           posted_cr  = b.posted_cr + excluded.posted_cr,
           pending_dr = b.pending_dr + excluded.pending_dr,
           pending_cr = b.pending_cr + excluded.pending_cr;
    RETURN NULL;
END $$;
-- +goose StatementEnd
