-- +goose Up

-- Every print of a refund form (DOMAIN.md §8a): the first print and each reprint, which the
-- document marks "reprint N" (print_no N + 1). Only the issuing store prints its forms.
-- Append-only, like the audit log; each print also writes an audit event.
CREATE TABLE form_prints (
    form_id    uuid        NOT NULL REFERENCES forms,
    print_no   integer     NOT NULL CHECK (print_no > 0),
    store_code text        NOT NULL REFERENCES stores,
    format     text        NOT NULL CHECK (format IN ('A4', 'RECEIPT_80MM')),
    language   text        NOT NULL CHECK (language ~ '^[a-z]{2}$'),
    printed_by text        NOT NULL,
    request_id uuid        NOT NULL,
    printed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (form_id, print_no)
);
CREATE TRIGGER form_prints_append_only BEFORE UPDATE OR DELETE ON form_prints
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER form_prints_no_truncate BEFORE TRUNCATE ON form_prints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Owned and granted as 00011_least_privilege.sql does: the store prints (SELECT, INSERT),
-- the authority and the jobs read; nobody updates.
ALTER TABLE form_prints OWNER TO taxrefund_owner;
GRANT SELECT, INSERT ON form_prints TO taxrefund_store;
GRANT SELECT ON form_prints TO taxrefund_authority, taxrefund_jobs;

-- Row-level security as on forms: a store reads and writes the prints of its own forms.
ALTER TABLE form_prints ENABLE ROW LEVEL SECURITY;
ALTER TABLE form_prints FORCE ROW LEVEL SECURITY;
CREATE POLICY form_prints_owner ON form_prints TO taxrefund_owner USING (true) WITH CHECK (true);
CREATE POLICY form_prints_read ON form_prints FOR SELECT TO taxrefund_store, taxrefund_authority, taxrefund_jobs USING (
    (SELECT party_role() IN ('authority', 'system'))
    OR store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
);
CREATE POLICY form_prints_print ON form_prints FOR INSERT TO taxrefund_store WITH CHECK (
    store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
);

-- +goose Down
DROP TABLE form_prints;
