-- The floor: the minimal write of a refund form's facts, on a database of its own
-- (`loadgen baseline -scenario floor` creates it beside the benchmark's, named
-- <database>_floor, and runs this file there). Plain tables, each with a primary key and
-- one secondary index; no foreign keys, CHECKs, triggers, row security or sealing. What
-- PostgreSQL does to store the same facts with nothing else asked of it, the yardstick for
-- the schema's write amplification (BENCH.md, "Write cost: the floor").
DROP TABLE IF EXISTS floor_forms, floor_form_lines, floor_journal_txns, floor_postings, floor_idempotency, floor_audit;

CREATE TABLE floor_forms (
    id              uuid        PRIMARY KEY,
    number          text        NOT NULL,
    store_code      text        NOT NULL,
    state           text        NOT NULL,
    doc_index       bytea       NOT NULL,
    doc_cipher      bytea       NOT NULL,
    nationality     text        NOT NULL,
    purchase_date   date        NOT NULL,
    issued_at       timestamptz NOT NULL,
    eligible_amount numeric     NOT NULL,
    gross_refund    numeric     NOT NULL
);
CREATE INDEX floor_forms_store_date ON floor_forms (store_code, purchase_date);

CREATE TABLE floor_form_lines (
    form_id        uuid     NOT NULL,
    line_no        smallint NOT NULL,
    description    text     NOT NULL,
    vat_rate       numeric  NOT NULL,
    quantity       integer  NOT NULL,
    amount         numeric  NOT NULL,
    invoice_number text     NOT NULL,
    PRIMARY KEY (form_id, line_no)
);
CREATE INDEX floor_form_lines_invoice ON floor_form_lines (invoice_number);

CREATE TABLE floor_journal_txns (
    id             uuid PRIMARY KEY,
    idem_key       text NOT NULL,
    kind           text NOT NULL,
    effective_date date NOT NULL
);
CREATE INDEX floor_journal_txns_idem ON floor_journal_txns (idem_key);

CREATE TABLE floor_postings (
    txn_id  uuid     NOT NULL,
    n       smallint NOT NULL,
    account text     NOT NULL,
    side    "char"   NOT NULL,
    amount  numeric  NOT NULL,
    PRIMARY KEY (txn_id, n)
);
CREATE INDEX floor_postings_account ON floor_postings (account);

CREATE TABLE floor_idempotency (
    caller     text        NOT NULL,
    request_id uuid        NOT NULL,
    response   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX floor_idempotency_created ON floor_idempotency (created_at);

CREATE TABLE floor_audit (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    object  text        NOT NULL,
    detail  jsonb       NOT NULL
);
CREATE INDEX floor_audit_object ON floor_audit (object);
