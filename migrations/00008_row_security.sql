-- +goose Up

-- Row-level security on forms and payouts: the database's own check of who may see and
-- write which row, behind the Go code's, so that a check missed in Go still leaks
-- nothing. The service runs as taxrefund_app (no tables, no BYPASSRLS) and names its
-- caller in the setting taxrefund.party, "<role>/<code>", for each transaction
-- (internal/db/party.go). Without it the application role sees no form and no payout.
--
--   store/<store>      its own forms: read, issue, void
--   customs/<port>     every form (travellers leave from any port); confirms export only
--                      at its port; records an immediate refund's completion at its port
--   desk/<desk>        every form (a cashier finds them by document); its agency's payouts;
--                      pays only at itself, for its agency
--   agency/<agency>    its own payouts and the forms they paid
--   authority/<office> and system/<job> (the service's background jobs): everything
--
-- FORCE binds the tables' owner too; the migrating role (the owner) keeps a policy of its
-- own, for migrations, maintenance and the SECURITY DEFINER functions below.

-- +goose StatementBegin
CREATE FUNCTION party_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT split_part(coalesce(current_setting('taxrefund.party', true), ''), '/', 1)
$$;
CREATE FUNCTION party_code() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT split_part(coalesce(current_setting('taxrefund.party', true), ''), '/', 2)
$$;
-- The agency of the calling desk (NULL for any other party).
CREATE FUNCTION party_desk_agency() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT agency_code FROM desks WHERE party_role() = 'desk' AND code = party_code()
$$;
-- +goose StatementEnd

ALTER TABLE forms ENABLE ROW LEVEL SECURITY;
ALTER TABLE forms FORCE ROW LEVEL SECURITY;
ALTER TABLE payouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payouts FORCE ROW LEVEL SECURITY;

CREATE POLICY forms_owner ON forms TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY payouts_owner ON payouts TO CURRENT_USER USING (true) WITH CHECK (true);

-- Each policy asks for the party through scalar subqueries, which PostgreSQL evaluates
-- once per statement (InitPlans), not per row; and the agency's test is a function rather
-- than a subquery, which would keep the scan of forms out of parallel workers. Written
-- per row, the policies made the authority's monthly report over a million forms about
-- four times slower; this way it costs what it costs a superuser.
-- +goose StatementBegin
CREATE FUNCTION form_paid_by_party_agency(payout uuid) RETURNS boolean LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM payouts WHERE id = payout AND agency_code = party_code());
END $$;
-- +goose StatementEnd

CREATE POLICY forms_read ON forms FOR SELECT TO taxrefund_app USING (
    (SELECT party_role() IN ('customs', 'desk', 'authority', 'system'))
    OR store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
    OR ((SELECT party_role() = 'agency') AND form_paid_by_party_agency(payout_id))
);
CREATE POLICY forms_issue ON forms FOR INSERT TO taxrefund_app WITH CHECK (
    store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
);
CREATE POLICY forms_change ON forms FOR UPDATE TO taxrefund_app USING (
    (SELECT party_role() IN ('customs', 'desk', 'authority', 'system'))
    OR store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
) WITH CHECK (
    (SELECT party_role() IN ('desk', 'authority', 'system'))
    OR store_code = (SELECT CASE WHEN party_role() = 'store' THEN party_code() END)
    OR verified_port = (SELECT CASE WHEN party_role() = 'customs' THEN party_code() END)
);

CREATE POLICY payouts_read ON payouts FOR SELECT TO taxrefund_app USING (
    (SELECT party_role() IN ('authority', 'system'))
    OR agency_code = (SELECT CASE party_role() WHEN 'agency' THEN party_code() WHEN 'desk' THEN party_desk_agency() END)
);
CREATE POLICY payouts_pay ON payouts FOR INSERT TO taxrefund_app WITH CHECK (
    (desk_code = (SELECT CASE WHEN party_role() = 'desk' THEN party_code() END)
        AND agency_code = (SELECT party_desk_agency()))
    OR ((SELECT party_role() = 'customs') AND method = 'PREPAYMENT' AND port_code = party_code())
);

-- The cash cap counts a traveller's cash across every agency's desks, payouts a desk may
-- not read: this function, with its owner's rights, gives the sum and nothing else.
-- +goose StatementBegin
CREATE FUNCTION cash_paid_on_day(doc bytea, day date) RETURNS numeric
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(sum(net_refund), 0) FROM payouts WHERE doc_index = doc AND paid_date = day AND method = 'CASH'
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION cash_paid_on_day(bytea, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cash_paid_on_day(bytea, date) TO taxrefund_app;

-- +goose Down
DROP FUNCTION cash_paid_on_day(bytea, date);
DROP POLICY payouts_pay ON payouts;
DROP POLICY payouts_read ON payouts;
DROP POLICY forms_change ON forms;
DROP POLICY forms_issue ON forms;
DROP POLICY forms_read ON forms;
DROP POLICY payouts_owner ON payouts;
DROP POLICY forms_owner ON forms;
DROP FUNCTION form_paid_by_party_agency(uuid);
ALTER TABLE payouts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE payouts DISABLE ROW LEVEL SECURITY;
ALTER TABLE forms NO FORCE ROW LEVEL SECURITY;
ALTER TABLE forms DISABLE ROW LEVEL SECURITY;
DROP FUNCTION party_desk_agency();
DROP FUNCTION party_code();
DROP FUNCTION party_role();
