-- +goose Up

-- Monthly settlement (DOMAIN.md §7): an agency declares a month's payouts, the authority
-- approves (posting the reimbursement) or returns the declaration with reasons.
CREATE TABLE declarations (
    id             uuid PRIMARY KEY,
    agency_code    text        NOT NULL REFERENCES agencies,
    -- First day of the declared month.
    month          date        NOT NULL CHECK (extract(day FROM month) = 1),
    status         text        NOT NULL CHECK (status IN ('DECLARED', 'RETURNED', 'APPROVED')),
    declared_by    text        NOT NULL,
    declared_at    timestamptz NOT NULL,
    reviewed_by    text,
    reviewed_at    timestamptz,
    return_reasons text[]      NOT NULL DEFAULT '{}',
    forms          integer     NOT NULL CHECK (forms >= 0),
    gross_refund   numeric     NOT NULL CHECK (gross_refund >= 0 AND gross_refund <= 1000000000000),
    fee            numeric     NOT NULL CHECK (fee >= 0 AND fee <= gross_refund),
    net_refund     numeric     NOT NULL CHECK (net_refund = gross_refund - fee),
    -- The reimbursement's journal transaction, once approved.
    txn_id         uuid UNIQUE REFERENCES journal_txns,
    CHECK (txn_id IS NULL OR status = 'APPROVED'),
    CHECK (status <> 'APPROVED' OR txn_id IS NOT NULL OR gross_refund = 0)
);
-- Once per agency and month, but a returned declaration may be declared again.
CREATE UNIQUE INDEX declarations_one_live ON declarations (agency_code, month) WHERE status <> 'RETURNED';

CREATE TABLE declaration_payouts (
    declaration_id uuid NOT NULL REFERENCES declarations,
    payout_id      uuid NOT NULL REFERENCES payouts,
    PRIMARY KEY (declaration_id, payout_id)
);
CREATE INDEX declaration_payouts_payout ON declaration_payouts (payout_id);

-- A closed month is frozen: no journal transaction may take an effective date inside it.
CREATE TABLE closed_months (
    month     date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    closed_at timestamptz NOT NULL DEFAULT now(),
    closed_by text        NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION journal_refuse_closed_month() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM closed_months WHERE month = date_trunc('month', NEW.effective_date)::date) THEN
        RAISE EXCEPTION 'month of % is closed: post in an open month', NEW.effective_date USING ERRCODE = 'TR002';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER journal_txns_open_month BEFORE INSERT ON journal_txns
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_closed_month();

CREATE TRIGGER closed_months_append_only BEFORE UPDATE OR DELETE ON closed_months
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Declarations and reports read an agency's payouts of a month.
CREATE INDEX payouts_agency_day ON payouts (agency_code, paid_date);

-- +goose Down
DROP TRIGGER journal_txns_open_month ON journal_txns;
DROP FUNCTION journal_refuse_closed_month;
DROP INDEX payouts_agency_day;
DROP TABLE closed_months, declaration_payouts, declarations;
