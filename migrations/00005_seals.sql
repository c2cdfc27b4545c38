-- +goose Up

-- Tamper evidence: the journal and the audit log are hash-chained. Each seal's hash
-- covers the previous hash and its row's canonical content; one sealer appends seals in
-- batches from a queue that the inserts fill, so writers never wait on the chain.
CREATE TABLE seal_queue (
    queued bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain  text   NOT NULL CHECK (chain IN ('journal', 'audit')),
    row_id text   NOT NULL,
    UNIQUE (chain, row_id)
);

CREATE TABLE seals (
    chain     text        NOT NULL CHECK (chain IN ('journal', 'audit')),
    seq       bigint      NOT NULL CHECK (seq > 0),
    row_id    text        NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, seq),
    UNIQUE (chain, row_id)
);

-- +goose StatementBegin
CREATE FUNCTION seal_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seal_queue (chain, row_id) VALUES (TG_ARGV[0], NEW.id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER journal_txns_seal AFTER INSERT ON journal_txns
    FOR EACH ROW EXECUTE FUNCTION seal_enqueue('journal');
CREATE TRIGGER audit_events_seal AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION seal_enqueue('audit');

CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Journal and audit rows that existed before sealing began are sealed like new ones.
INSERT INTO seal_queue (chain, row_id) SELECT 'journal', id::text FROM journal_txns ORDER BY created_at, id;
INSERT INTO seal_queue (chain, row_id) SELECT 'audit', id::text FROM audit_events ORDER BY id;

-- Certificates the authority has revoked, by serial number (hex).
CREATE TABLE revoked_certificates (
    serial     text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{1,64}$'),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    revoked_by text        NOT NULL,
    reason     text        NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE revoked_certificates;
DROP TRIGGER journal_txns_seal ON journal_txns;
DROP TRIGGER audit_events_seal ON audit_events;
DROP FUNCTION seal_enqueue;
DROP TABLE seals, seal_queue;
