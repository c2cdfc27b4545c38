-- +goose Up

-- Registry (DOMAIN.md §1).
CREATE TABLE regions (
    code text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE blocks (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    city        text NOT NULL,
    region_code text NOT NULL REFERENCES regions
);

CREATE TABLE ports (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    name        text NOT NULL,
    city        text NOT NULL,
    region_code text NOT NULL REFERENCES regions
);

CREATE TABLE agencies (
    code text PRIMARY KEY,
    name text NOT NULL
);

-- A desk is an agency counter at a port of exit, or a refund point in a block.
CREATE TABLE desks (
    code        text PRIMARY KEY,
    agency_code text NOT NULL REFERENCES agencies,
    kind        text NOT NULL CHECK (kind IN ('AIRPORT', 'REFUND_POINT')),
    port_code   text REFERENCES ports,
    block_code  text REFERENCES blocks,
    name        text NOT NULL,
    CHECK ((kind = 'AIRPORT' AND port_code IS NOT NULL AND block_code IS NULL)
        OR (kind = 'REFUND_POINT' AND block_code IS NOT NULL AND port_code IS NULL))
);

CREATE TABLE stores (
    code             text PRIMARY KEY,
    -- Unified social credit code (统一社会信用代码).
    credit_code      text        NOT NULL UNIQUE,
    name             text        NOT NULL,
    block_code       text        NOT NULL REFERENCES blocks,
    credit_grade     text        NOT NULL CHECK (credit_grade IN ('A', 'B', 'M')),
    immediate_refund boolean     NOT NULL DEFAULT false,
    status           text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'EXITED')),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Effective-dated parameters (DOMAIN.md §3, §6): a value holds from valid_from until the next
-- row of the same name and scope. scope is '' for national values, a VAT rate for refund
-- rates ('0.13'), an agency code for fees, a region code for regional values.
CREATE TABLE parameters (
    name       text        NOT NULL CHECK (name IN ('min_purchase', 'refund_rate', 'cash_cap', 'export_window_days',
                                                     'agency_fee_rate', 'committed_period_days', 'daily_prepay_cap')),
    scope      text        NOT NULL DEFAULT '',
    valid_from date        NOT NULL,
    value      numeric     NOT NULL CHECK (value >= 0 AND value <= 1000000000000),
    note       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, scope, valid_from)
);

-- Refund forms (DOMAIN.md §5). The traveller's document number is stored only encrypted
-- (doc_cipher, with the id of the key that sealed it) and as a keyed-hash blind index
-- (doc_index) for look-ups; doc_masked is what receipts and screens show.
CREATE TABLE forms (
    id                 uuid PRIMARY KEY,
    number             text        NOT NULL UNIQUE,
    store_code         text        NOT NULL REFERENCES stores,
    block_code         text        NOT NULL REFERENCES blocks,
    state              text        NOT NULL CHECK (state IN ('ISSUED', 'VERIFIED', 'REJECTED', 'REFUNDED', 'VOIDED', 'EXPIRED', 'SETTLED')),
    doc_type           text        NOT NULL CHECK (doc_type IN ('PASSPORT', 'HK_MACAO_PERMIT', 'TAIWAN_PERMIT')),
    doc_country        text        NOT NULL CHECK (doc_country ~ '^[A-Z]{2}$'),
    doc_index          bytea       NOT NULL,
    doc_key_id         text        NOT NULL,
    doc_cipher         bytea       NOT NULL,
    doc_masked          text        NOT NULL,
    doc_expiry         date        NOT NULL,
    nationality        text        NOT NULL CHECK (nationality ~ '^[A-Z]{2}$'),
    last_entry_date    date        NOT NULL,
    purchase_date      date        NOT NULL,
    issued_at          timestamptz NOT NULL,
    export_deadline    date        NOT NULL,
    eligible_amount    numeric     NOT NULL CHECK (eligible_amount > 0 AND eligible_amount <= 1000000000000),
    gross_refund       numeric     NOT NULL CHECK (gross_refund >= 0 AND gross_refund <= 1000000000000),
    -- The pending ledger transfer of the gross refund (the issuing journal transaction).
    pending_id         uuid        NOT NULL UNIQUE REFERENCES pending_transfers,
    verified_port      text REFERENCES ports,
    verified_officer   text,
    verified_at        timestamptz,
    confirmed_eligible numeric CHECK (confirmed_eligible >= 0 AND confirmed_eligible <= eligible_amount),
    confirmed_gross    numeric CHECK (confirmed_gross >= 0 AND confirmed_gross <= gross_refund),
    payout_id          uuid,
    closed_at          timestamptz,
    close_reason       text,
    CHECK ((state IN ('VERIFIED', 'REJECTED', 'REFUNDED', 'SETTLED')) = (verified_at IS NOT NULL)),
    CHECK ((state IN ('REFUNDED', 'SETTLED')) = (payout_id IS NOT NULL))
);
-- A form is issued only by an active store, whatever the caller's cache says; the form
-- takes the store's block for the reports.
-- +goose StatementBegin
CREATE FUNCTION forms_check_store() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT block_code INTO NEW.block_code FROM stores WHERE code = NEW.store_code AND status = 'ACTIVE';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % is not active', NEW.store_code USING ERRCODE = 'TR001';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER forms_store_active BEFORE INSERT ON forms
    FOR EACH ROW EXECUTE FUNCTION forms_check_store();

CREATE INDEX forms_store_date ON forms (store_code, purchase_date, id);
CREATE INDEX forms_document ON forms (doc_index, purchase_date);
CREATE INDEX forms_issued_deadline ON forms (export_deadline) WHERE state = 'ISSUED';

CREATE TABLE form_lines (
    form_id        uuid     NOT NULL REFERENCES forms,
    line_no        smallint NOT NULL CHECK (line_no > 0),
    description    text     NOT NULL,
    category       text     NOT NULL,
    vat_rate       numeric  NOT NULL,
    refund_rate    numeric  NOT NULL,
    quantity       integer  NOT NULL CHECK (quantity > 0),
    amount         numeric  NOT NULL CHECK (amount > 0 AND amount <= 1000000000000 AND amount = round(amount, 2)),
    invoice_number text     NOT NULL,
    confirmed_qty  integer CHECK (confirmed_qty BETWEEN 0 AND quantity),
    PRIMARY KEY (form_id, line_no)
);

-- An invoice can be on at most one live (not voided) form.
CREATE TABLE form_invoices (
    form_id        uuid    NOT NULL REFERENCES forms,
    invoice_number text    NOT NULL,
    invoice_date   date    NOT NULL,
    store_code     text    NOT NULL,
    live           boolean NOT NULL DEFAULT true,
    PRIMARY KEY (form_id, invoice_number)
);
CREATE UNIQUE INDEX form_invoices_live ON form_invoices (store_code, invoice_number) WHERE live;

-- A payout pays one or more VERIFIED forms of one traveller; a form is in at most one payout.
CREATE TABLE payouts (
    id                uuid PRIMARY KEY,
    desk_code         text        NOT NULL REFERENCES desks,
    agency_code       text        NOT NULL REFERENCES agencies,
    port_code         text REFERENCES ports,
    cashier           text        NOT NULL,
    method            text        NOT NULL CHECK (method IN ('CASH', 'BANK_CARD', 'MOBILE')),
    account_masked    text        NOT NULL,
    receipt_reference text        NOT NULL,
    doc_index         bytea       NOT NULL,
    doc_type          text        NOT NULL,
    doc_country       text        NOT NULL,
    doc_masked         text        NOT NULL,
    paid_at           timestamptz NOT NULL,
    paid_date         date        NOT NULL,
    fee_rate          numeric     NOT NULL CHECK (fee_rate >= 0 AND fee_rate < 1),
    gross_refund      numeric     NOT NULL CHECK (gross_refund >= 0 AND gross_refund <= 1000000000000),
    fee               numeric     NOT NULL CHECK (fee >= 0 AND fee <= gross_refund),
    net_refund        numeric     NOT NULL CHECK (net_refund >= 0 AND net_refund = gross_refund - fee),
    -- The ledger transaction; none when every form's refund rounds to 0.00.
    txn_id            uuid UNIQUE REFERENCES journal_txns,
    CHECK (txn_id IS NOT NULL OR gross_refund = 0)
);
CREATE INDEX payouts_document_day ON payouts (doc_index, paid_date);

CREATE TABLE payout_forms (
    payout_id       uuid    NOT NULL REFERENCES payouts,
    -- Unique: a form is paid at most once, whatever races or retries happen.
    form_id         uuid    NOT NULL UNIQUE REFERENCES forms,
    eligible_amount numeric NOT NULL,
    gross_refund    numeric NOT NULL,
    fee             numeric NOT NULL,
    net_refund      numeric NOT NULL CHECK (net_refund = gross_refund - fee),
    PRIMARY KEY (payout_id, form_id)
);
ALTER TABLE forms ADD CONSTRAINT forms_payout_fk FOREIGN KEY (payout_id) REFERENCES payouts DEFERRABLE INITIALLY DEFERRED;

CREATE TRIGGER payouts_append_only BEFORE UPDATE OR DELETE ON payouts
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER payout_forms_append_only BEFORE UPDATE OR DELETE ON payout_forms
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Idempotency records: a retried mutating call returns the stored first response.
CREATE TABLE idempotency_keys (
    caller       text        NOT NULL,
    request_id   uuid        NOT NULL,
    method       text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);

-- Who did what, when. Append-only.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    action     text        NOT NULL,
    object     text        NOT NULL,
    request_id uuid,
    detail     jsonb       NOT NULL DEFAULT '{}'
);
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE audit_events, idempotency_keys;
ALTER TABLE forms DROP CONSTRAINT forms_payout_fk;
DROP TABLE payout_forms, payouts, form_invoices, form_lines, forms, parameters, stores, desks, agencies, ports, blocks, regions;
DROP FUNCTION forms_check_store;
