-- +goose Up

-- The double-entry ledger (DOMAIN.md §8). Append-only: journal rows are never updated or
-- deleted; a pending transfer is resolved by a new row, at most once.

CREATE TABLE accounts (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE CHECK (code ~ '^[a-z_]+(:[A-Za-z0-9_.-]+)+$')
);

-- Balances are maintained by the journal trigger, never recomputed by scanning. Each account
-- has up to 16 shard rows so that concurrent transactions on a hot account (the refund
-- expense, say) do not queue on one row lock; the balance is the sum of its shards.
CREATE TABLE account_balances (
    account_id integer  NOT NULL REFERENCES accounts,
    shard      smallint NOT NULL CHECK (shard BETWEEN 0 AND 15),
    posted_dr  numeric  NOT NULL DEFAULT 0,
    posted_cr  numeric  NOT NULL DEFAULT 0,
    pending_dr numeric  NOT NULL DEFAULT 0,
    pending_cr numeric  NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard)
);

CREATE TABLE journal_txns (
    id             uuid PRIMARY KEY,
    -- The caller's idempotency key for this money fact: the same fact is never written twice.
    idem_key       text        NOT NULL UNIQUE,
    kind           text        NOT NULL,
    -- What the transaction is about, e.g. a form number or a payout id.
    ref            text        NOT NULL,
    -- Local (Asia/Shanghai) date the fact belongs to: closed months are frozen by it.
    effective_date date        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE journal_entries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txn_id     uuid    NOT NULL REFERENCES journal_txns,
    account_id integer NOT NULL REFERENCES accounts,
    -- Two layers, each balanced on its own: posted money, and pending (two-phase) money.
    pending    boolean NOT NULL,
    side       "char"  NOT NULL CHECK (side IN ('D', 'C')),
    -- NaN sorts above every number in PostgreSQL: the upper bound keeps it out.
    amount     numeric NOT NULL CHECK (amount > 0 AND amount <= 1000000000000 AND amount = round(amount, 2))
);
CREATE INDEX journal_entries_txn ON journal_entries (txn_id);

-- A pending transfer is created by a journal transaction (its id) and resolved at most once.
CREATE TABLE pending_transfers (
    id             uuid PRIMARY KEY REFERENCES journal_txns,
    debit_account  integer     NOT NULL REFERENCES accounts,
    credit_account integer     NOT NULL REFERENCES accounts,
    amount         numeric     NOT NULL CHECK (amount > 0 AND amount <= 1000000000000 AND amount = round(amount, 2)),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pending_resolutions (
    -- The primary key is what makes a pending transfer resolve at most once.
    pending_id    uuid PRIMARY KEY REFERENCES pending_transfers,
    outcome       text        NOT NULL CHECK (outcome IN ('POSTED', 'VOIDED')),
    posted_amount numeric     NOT NULL CHECK (posted_amount >= 0 AND posted_amount <= 1000000000000 AND posted_amount = round(posted_amount, 2)),
    txn_id        uuid        NOT NULL UNIQUE REFERENCES journal_txns,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'VOIDED') = (posted_amount = 0))
);

-- +goose StatementBegin
CREATE FUNCTION ledger_check_resolution() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending_amount numeric;
BEGIN
    SELECT amount INTO pending_amount FROM pending_transfers WHERE id = NEW.pending_id;
    IF NEW.posted_amount > pending_amount THEN
        RAISE EXCEPTION 'pending transfer %: posting % exceeds the pending %', NEW.pending_id, NEW.posted_amount, pending_amount
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER pending_resolutions_amount BEFORE INSERT ON pending_resolutions
    FOR EACH ROW EXECUTE FUNCTION ledger_check_resolution();

-- Every statement that inserts entries must leave each of its transactions balanced, per
-- layer; the same statement then folds the entries into the maintained balances.
-- +goose StatementBegin
CREATE FUNCTION ledger_apply_entries() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER journal_entries_apply AFTER INSERT ON journal_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_entries();

-- +goose StatementBegin
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd
CREATE TRIGGER journal_txns_append_only BEFORE UPDATE OR DELETE ON journal_txns
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_txns_no_truncate BEFORE TRUNCATE ON journal_txns
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pending_transfers_append_only BEFORE UPDATE OR DELETE ON pending_transfers
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pending_transfers_no_truncate BEFORE TRUNCATE ON pending_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pending_resolutions_append_only BEFORE UPDATE OR DELETE ON pending_resolutions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pending_resolutions_no_truncate BEFORE TRUNCATE ON pending_resolutions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE pending_resolutions, pending_transfers, journal_entries, journal_txns, account_balances, accounts;
DROP FUNCTION ledger_check_resolution, ledger_apply_entries, refuse_change;
