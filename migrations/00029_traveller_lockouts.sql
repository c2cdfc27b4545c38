-- +goose Up

-- Wrong answers to the traveller's refund-status look-up, per form number (README, "Where
-- is my refund?"): LockAfter wrong answers within LockFor lock the number for LockFor. Kept
-- in the database, not in each server's memory, so that two servers behind one name give a
-- guesser no more tries than one, and a restart forgets nothing. Rows are small and swept
-- once they no longer count.
CREATE TABLE traveller_lockouts (
    form_number  text        PRIMARY KEY CHECK (length(form_number) <= 32),
    strikes      integer     NOT NULL CHECK (strikes >= 0),
    first_at     timestamptz NOT NULL,
    locked_until timestamptz
);

-- Owned and granted as 00011_least_privilege.sql does: the look-up runs on the jobs pool
-- as the system party; no other role reads or writes it.
ALTER TABLE traveller_lockouts OWNER TO taxrefund_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON traveller_lockouts TO taxrefund_jobs;

-- +goose Down
DROP TABLE traveller_lockouts;
