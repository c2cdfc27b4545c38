-- +goose Up

-- Least privilege (SECURITY.md, "The database"). Until now the service acted as one role,
-- taxrefund_app, that could set any party, update any column of forms, rewrite stored
-- idempotency answers and read every table. From here:
--
--   taxrefund_owner      owns every table and function; NOLOGIN. The migrating user is a
--                        member (migrations, maintenance, the tests' fixtures).
--   taxrefund_store      StoreService: issue, read and void its forms.
--   taxrefund_desk       DeskService and AgencyService: customs, cashiers, refund points
--                        and the agencies' back offices.
--   taxrefund_authority  AuthorityService: the registry, parameters, declarations'
--                        review, month closing, reports, on-demand expiry and captures.
--   taxrefund_jobs       the server's background jobs (party system/<job>): expiry,
--                        captures, the sealer, the acquirer dispatcher, the checks and
--                        the business metrics, key checks and re-keying.
--
-- Each is NOLOGIN: a process logs in as the URL's user and acts as its services' roles
-- with SET ROLE (taxrefund serve -services). taxrefund_app is now nothing but the union
-- of the four, for a process that serves everything from one pool (-db-role).
--
-- Grants are per column where a row is updated: no role may UPDATE a money column (a
-- line's amount or rates, a form's A and G, any amount of a payout, prepayment or
-- declaration). The confirmed A' and G' are written once, by customs, and a trigger keeps
-- them from changing after. A role may set only a party of its own audience
-- (party_role() refuses the others with 42501), and row-level security does the rest.

-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['taxrefund_owner', 'taxrefund_store', 'taxrefund_desk', 'taxrefund_authority', 'taxrefund_jobs'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', r);
        END IF;
    END LOOP;
END $$;
-- +goose StatementEnd
GRANT taxrefund_owner TO CURRENT_USER;
-- Since PostgreSQL 15 only the database owner may create in public: the owner of the
-- tables must be able to.
GRANT USAGE, CREATE ON SCHEMA public TO taxrefund_owner;
GRANT taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs TO CURRENT_USER;
GRANT taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs TO taxrefund_app;

-- The owner: every table, view and function of the schema (goose's own table stays with
-- the migrating user). A table's identity sequence follows its table.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> 'goose_db_version'
                AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO taxrefund_owner', r.t);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO taxrefund_owner', r.f);
    END LOOP;
END $$;
-- +goose StatementEnd
-- The owner's SECURITY DEFINER functions (the balance trigger, the cash cap's sum) see
-- every form and payout, as the migrating user did; members of the owner inherit it.
ALTER POLICY forms_owner ON forms TO taxrefund_owner;
ALTER POLICY payouts_owner ON payouts TO taxrefund_owner;

-- taxrefund_app's own grants go: what it may do, it has through the four roles.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM taxrefund_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM taxrefund_app;
REVOKE ALL ON FUNCTION cash_paid_on_day(bytea, date) FROM taxrefund_app;

-- What every service role needs: the registry (the authorization's check of each caller,
-- the triggers' reads), the parameters, the journal (every money fact writes one), the
-- audit log and the seal queue its triggers fill, idempotency keys.
GRANT USAGE ON SCHEMA public TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT ON regions, blocks, ports, agencies, desks, stores, designated_ports, parameters, calendar_days,
    revoked_certificates, closed_months TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT, INSERT ON journal_txns, journal_entries, pending_transfers, pending_resolutions, audit_events
    TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT INSERT ON seal_queue TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT, INSERT, UPDATE (code) ON accounts TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT ON account_balances TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
GRANT SELECT, INSERT, UPDATE (response) ON idempotency_keys TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;

-- The store: its forms (row-level security keeps it to its own), and of prepayments only
-- whether a form has one outstanding (a form with a prepayment is voided at the refund
-- point): not the card token, the document index or the amounts.
GRANT SELECT, INSERT, UPDATE (state, closed_at, close_reason) ON forms TO taxrefund_store;
GRANT SELECT, INSERT ON form_lines TO taxrefund_store;
GRANT SELECT, INSERT, UPDATE (live) ON form_invoices TO taxrefund_store;
GRANT SELECT (form_id, state) ON prepayments TO taxrefund_store;

-- The desk: customs confirm exports (the confirmed quantities and totals), cashiers pay
-- and refund points prepay, hand back and complete; agencies declare. It issues no form,
-- changes no amount, approves nothing, and changes no registry row.
GRANT SELECT, UPDATE (state, verified_port, verified_officer, verified_at, confirmed_eligible, confirmed_gross,
    closed_at, close_reason, payout_id) ON forms TO taxrefund_desk;
GRANT SELECT, UPDATE (confirmed_qty) ON form_lines TO taxrefund_desk;
GRANT SELECT, UPDATE (live) ON form_invoices TO taxrefund_desk;
GRANT SELECT, INSERT ON payouts, payout_forms, declarations, declaration_payouts, acquirer_outbox TO taxrefund_desk;
GRANT SELECT, INSERT, UPDATE (state, resolved_txn_id, resolved_at) ON prepayments TO taxrefund_desk;
GRANT EXECUTE ON FUNCTION cash_paid_on_day(bytea, date) TO taxrefund_desk;

-- The authority: the registry, parameters and calendar; reviews declarations (their
-- status, never their amounts); closes months; expires forms and captures
-- pre-authorizations on demand; reads everything for reports, reconciliation and checks.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO taxrefund_authority;
GRANT INSERT, UPDATE (status) ON stores TO taxrefund_authority;
GRANT INSERT ON parameters, closed_months, revoked_certificates, acquirer_outbox TO taxrefund_authority;
GRANT INSERT, UPDATE (working, note) ON calendar_days TO taxrefund_authority;
GRANT UPDATE (status, reviewed_by, reviewed_at, return_reasons, txn_id) ON declarations TO taxrefund_authority;
GRANT UPDATE (state, closed_at, close_reason) ON forms TO taxrefund_authority;
GRANT UPDATE (state, resolved_txn_id, resolved_at) ON prepayments TO taxrefund_authority;

-- The jobs: expiry, captures, the sealer, the dispatcher and its development acquirer,
-- re-keying of document numbers; they read everything for the checks and the metrics.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO taxrefund_jobs;
GRANT UPDATE (state, closed_at, close_reason, doc_key_id, doc_cipher) ON forms TO taxrefund_jobs;
GRANT UPDATE (state, resolved_txn_id, resolved_at) ON prepayments TO taxrefund_jobs;
GRANT INSERT, UPDATE (next_attempt_at, attempts, last_error, delivered_at) ON acquirer_outbox TO taxrefund_jobs;
GRANT INSERT, UPDATE (deliveries) ON dev_acquirer_received TO taxrefund_jobs;
GRANT INSERT ON seals TO taxrefund_jobs;
GRANT DELETE ON seal_queue TO taxrefund_jobs;
REVOKE SELECT ON goose_db_version FROM taxrefund_authority, taxrefund_jobs;

-- Row-level security names the four roles (taxrefund_app is a member of each).
ALTER POLICY forms_read ON forms TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
ALTER POLICY forms_issue ON forms TO taxrefund_store;
ALTER POLICY forms_change ON forms TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
ALTER POLICY payouts_read ON payouts TO taxrefund_desk, taxrefund_authority, taxrefund_jobs;
ALTER POLICY payouts_pay ON payouts TO taxrefund_desk;

-- A role acts only as a party of its audience: the store role as a store, the desk role
-- as customs, a desk or an agency, the authority's as the authority, the jobs' as the
-- system. Every policy reads the party through party_role(), which refuses any other.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION party_role() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    r text := split_part(coalesce(current_setting('taxrefund.party', true), ''), '/', 1);
    audience text;
BEGIN
    audience := CASE r
        WHEN '' THEN NULL
        WHEN 'store' THEN 'taxrefund_store'
        WHEN 'customs' THEN 'taxrefund_desk'
        WHEN 'desk' THEN 'taxrefund_desk'
        WHEN 'agency' THEN 'taxrefund_desk'
        WHEN 'authority' THEN 'taxrefund_authority'
        WHEN 'system' THEN 'taxrefund_jobs'
        ELSE '-' END;
    IF audience IS NOT NULL AND (audience = '-' OR NOT pg_has_role(current_user, audience, 'USAGE')) THEN
        RAISE EXCEPTION 'role % may not act as party %', current_user, current_setting('taxrefund.party', true)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN r;
END $$;
-- +goose StatementEnd

-- A stored idempotency answer is final: the claim row (response '{}') is answered once,
-- and no answered row changes or goes, whoever asks.
-- +goose StatementBegin
CREATE FUNCTION idempotency_answer_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.response <> '\x7b7d'::bytea THEN
        RAISE EXCEPTION 'idempotency answer of % / % is final: % refused', OLD.caller, OLD.request_id, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER FUNCTION idempotency_answer_final() OWNER TO taxrefund_owner;
CREATE TRIGGER idempotency_keys_final BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION idempotency_answer_final();

-- Customs confirm an export once: the confirmed quantities and A', G' do not change after.
-- +goose StatementBegin
CREATE FUNCTION confirmation_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'forms' THEN
        IF OLD.confirmed_eligible IS NOT NULL AND NEW.confirmed_eligible IS DISTINCT FROM OLD.confirmed_eligible
            OR OLD.confirmed_gross IS NOT NULL AND NEW.confirmed_gross IS DISTINCT FROM OLD.confirmed_gross THEN
            RAISE EXCEPTION 'the confirmed export of form % is final', OLD.number USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF OLD.confirmed_qty IS NOT NULL AND NEW.confirmed_qty IS DISTINCT FROM OLD.confirmed_qty THEN
        RAISE EXCEPTION 'the confirmed export of line % is final', OLD.line_no USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER FUNCTION confirmation_final() OWNER TO taxrefund_owner;
CREATE TRIGGER forms_confirmation_final BEFORE UPDATE OF confirmed_eligible, confirmed_gross ON forms
    FOR EACH ROW EXECUTE FUNCTION confirmation_final();
CREATE TRIGGER form_lines_confirmation_final BEFORE UPDATE OF confirmed_qty ON form_lines
    FOR EACH ROW EXECUTE FUNCTION confirmation_final();

-- +goose Down
DROP TRIGGER form_lines_confirmation_final ON form_lines;
DROP TRIGGER forms_confirmation_final ON forms;
DROP FUNCTION confirmation_final();
DROP TRIGGER idempotency_keys_final ON idempotency_keys;
DROP FUNCTION idempotency_answer_final();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION party_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT split_part(coalesce(current_setting('taxrefund.party', true), ''), '/', 1)
$$;
-- +goose StatementEnd
ALTER POLICY forms_read ON forms TO taxrefund_app;
ALTER POLICY forms_issue ON forms TO taxrefund_app;
ALTER POLICY forms_change ON forms TO taxrefund_app;
ALTER POLICY payouts_read ON payouts TO taxrefund_app;
ALTER POLICY payouts_pay ON payouts TO taxrefund_app;
ALTER POLICY forms_owner ON forms TO CURRENT_USER;
ALTER POLICY payouts_owner ON payouts TO CURRENT_USER;
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
                AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = 'taxrefund_owner') LOOP
        EXECUTE format('REVOKE ALL ON %s FROM taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs', r.t);
        EXECUTE format('ALTER TABLE %s OWNER TO %I', r.t, current_user);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = 'taxrefund_owner') LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', r.f, current_user);
    END LOOP;
END $$;
-- +goose StatementEnd
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;
REVOKE ALL ON FUNCTION cash_paid_on_day(bytea, date) FROM taxrefund_desk;
REVOKE USAGE, CREATE ON SCHEMA public FROM taxrefund_owner;
GRANT EXECUTE ON FUNCTION cash_paid_on_day(bytea, date) TO taxrefund_app;
GRANT SELECT, INSERT ON journal_txns, journal_entries, pending_transfers, pending_resolutions, audit_events,
    payouts, payout_forms, seals, closed_months, declaration_payouts, parameters, revoked_certificates TO taxrefund_app;
GRANT SELECT, INSERT, UPDATE ON forms, form_lines, form_invoices, idempotency_keys, stores, declarations,
    prepayments, acquirer_outbox, dev_acquirer_received, calendar_days TO taxrefund_app;
GRANT SELECT, INSERT, DELETE ON seal_queue TO taxrefund_app;
GRANT SELECT ON regions, blocks, ports, agencies, desks, designated_ports, account_balances TO taxrefund_app;
GRANT SELECT, INSERT, UPDATE (code) ON accounts TO taxrefund_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO taxrefund_app;
