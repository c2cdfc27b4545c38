-- +goose Up

-- The service runs as taxrefund_app, which owns nothing and has only the privileges it
-- needs: the journal, audit log, payouts and seals are INSERT-only to it (the
-- append-only triggers refuse UPDATE and DELETE to their owner too). The migrating user
-- becomes a member so that the service's login can SET ROLE to it.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taxrefund_app') THEN
        CREATE ROLE taxrefund_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END $$;
-- +goose StatementEnd
GRANT taxrefund_app TO CURRENT_USER;

GRANT USAGE ON SCHEMA public TO taxrefund_app;
GRANT SELECT, INSERT ON journal_txns, journal_entries, pending_transfers, pending_resolutions, audit_events,
    payouts, payout_forms, seals, closed_months, declaration_payouts, parameters, revoked_certificates TO taxrefund_app;
GRANT SELECT, INSERT, UPDATE ON forms, form_lines, form_invoices, idempotency_keys, stores, declarations,
    prepayments, acquirer_outbox, dev_acquirer_received, calendar_days TO taxrefund_app;
GRANT SELECT, INSERT, DELETE ON seal_queue TO taxrefund_app;
GRANT SELECT ON regions, blocks, ports, agencies, desks, designated_ports, account_balances TO taxrefund_app;
-- UPDATE of code only: Accounts' INSERT ... ON CONFLICT DO UPDATE SET code = excluded.code.
GRANT SELECT, INSERT, UPDATE (code) ON accounts TO taxrefund_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO taxrefund_app;

-- Balances are folded in by the journal trigger with its owner's rights: the service
-- cannot write account_balances directly.
ALTER FUNCTION ledger_apply_entries() SECURITY DEFINER SET search_path = public, pg_temp;

-- +goose Down
ALTER FUNCTION ledger_apply_entries() SECURITY INVOKER RESET search_path;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM taxrefund_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM taxrefund_app;
REVOKE USAGE ON SCHEMA public FROM taxrefund_app;
