-- +goose Up

-- TRUNCATE bypasses row triggers: refuse it on the remaining append-only tables too.
CREATE TRIGGER payouts_no_truncate BEFORE TRUNCATE ON payouts
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER payout_forms_no_truncate BEFORE TRUNCATE ON payout_forms
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER closed_months_no_truncate BEFORE TRUNCATE ON closed_months
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The service may log in as taxrefund_app itself (where the server's authentication lets
-- it, e.g. trust on a development machine, or a password an operator sets). Its session
-- then cannot RESET ROLE back to a privileged user, as a SET ROLE session could.
ALTER ROLE taxrefund_app LOGIN;

-- +goose Down
ALTER ROLE taxrefund_app NOLOGIN;
DROP TRIGGER payouts_no_truncate ON payouts;
DROP TRIGGER payout_forms_no_truncate ON payout_forms;
DROP TRIGGER closed_months_no_truncate ON closed_months;
