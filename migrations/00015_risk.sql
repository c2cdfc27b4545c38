-- +goose Up

-- Risk flags for customs (DOMAIN.md §8a): every form is GREEN or RED at the desk; a RED
-- form needs a recorded inspection before its export is confirmed. The rules are in
-- internal/risk; their thresholds are effective-dated parameters like the others.
ALTER TABLE parameters DROP CONSTRAINT parameters_name_check;
ALTER TABLE parameters ADD CONSTRAINT parameters_name_check CHECK (name IN ('min_purchase', 'refund_rate', 'cash_cap',
    'export_window_days', 'agency_fee_rate', 'committed_period_days', 'daily_prepay_cap',
    'risk_velocity_days', 'risk_velocity_forms', 'risk_velocity_amount', 'risk_split_margin', 'risk_split_forms',
    'risk_serial_threshold', 'risk_stay_margin_days', 'risk_min_age_minutes'));

-- The serial number of high-value goods, given by the store at issuance and confirmed by
-- customs at export. NULL for the lines below the threshold (nearly all): no cost to them.
ALTER TABLE form_lines ADD COLUMN serial_number text
    CHECK (serial_number ~ '^[A-Za-z0-9][A-Za-z0-9./-]{0,63}$');

-- A store under review: its forms are RED. Set and cleared by the authority (audited).
ALTER TABLE stores ADD COLUMN under_review boolean NOT NULL DEFAULT false;
GRANT UPDATE (under_review) ON stores TO taxrefund_authority;

-- Customs inspections of RED forms. Insert-only, like the audit log; each also writes an
-- audit event. rules are the codes of the reasons that made the form RED when inspected.
CREATE TABLE inspections (
    id          uuid        PRIMARY KEY,
    form_id     uuid        NOT NULL REFERENCES forms,
    port_code   text        NOT NULL REFERENCES ports,
    officer     text        NOT NULL CHECK (length(officer) BETWEEN 1 AND 200),
    result      text        NOT NULL CHECK (result IN ('PASSED', 'FAILED')),
    note        text        NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    rules       text[]      NOT NULL DEFAULT '{}',
    request_id  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspections_form ON inspections (form_id);
CREATE INDEX inspections_month ON inspections USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE TRIGGER inspections_append_only BEFORE UPDATE OR DELETE ON inspections
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER inspections_no_truncate BEFORE TRUNCATE ON inspections
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The flags customs met: one row per form and rule, written the first time a RED form is
-- refused for want of an inspection or is inspected. The monthly figures per store and
-- rule count these. Insert-only.
CREATE TABLE risk_flags (
    form_id    uuid        NOT NULL REFERENCES forms,
    store_code text        NOT NULL,
    rule       text        NOT NULL CHECK (rule ~ '^[a-z_]{1,40}$'),
    detail     text        NOT NULL CHECK (length(detail) <= 500),
    flagged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (form_id, rule)
);
CREATE INDEX risk_flags_month ON risk_flags USING brin (flagged_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE TRIGGER risk_flags_append_only BEFORE UPDATE OR DELETE ON risk_flags
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER risk_flags_no_truncate BEFORE TRUNCATE ON risk_flags
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Owned and granted as 00011_least_privilege.sql does: customs (the desk role) inspect and
-- flag (SELECT, INSERT); the authority and the jobs read; nobody updates; the store has
-- no access.
ALTER TABLE inspections OWNER TO taxrefund_owner;
ALTER TABLE risk_flags OWNER TO taxrefund_owner;
GRANT SELECT, INSERT ON inspections, risk_flags TO taxrefund_desk;
GRANT SELECT ON inspections, risk_flags TO taxrefund_authority, taxrefund_jobs;

-- No index is added for the velocity and split rules: both select a document's forms by
-- forms_document (doc_index, purchase_date), the purchase date being the local date of
-- issued_at, and filter issued_at on the few rows of one document. So issuing writes no
-- more index entries than before.

-- +goose Down
DROP TABLE risk_flags;
DROP TABLE inspections;
REVOKE UPDATE (under_review) ON stores FROM taxrefund_authority;
ALTER TABLE stores DROP COLUMN under_review;
ALTER TABLE form_lines DROP COLUMN serial_number;
ALTER TABLE parameters DROP CONSTRAINT parameters_name_check;
ALTER TABLE parameters ADD CONSTRAINT parameters_name_check CHECK (name IN ('min_purchase', 'refund_rate', 'cash_cap',
    'export_window_days', 'agency_fee_rate', 'committed_period_days', 'daily_prepay_cap'));
