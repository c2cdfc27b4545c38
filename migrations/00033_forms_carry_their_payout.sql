-- +goose Up

-- A paid form carries its payout's date, port and agency and its own share of the payout
-- (DOMAIN.md §7: a refund counts as paid in the month of its payout, at the payout's port
-- and agency). The monthly report then reads a month's forms, issued or paid in it, from
-- forms alone (internal/report/monthly.go): before, it looked up each form's payout row
-- and payout by key, two index probes per paid form, and a month whose forms are mostly
-- paid (every month once it is a month old) cost several times an unpaid one (BENCH.md).
--
-- The copy is the database's, not the writer's: a trigger fills it from payout_forms and
-- payouts whenever payout_id is set or the copy is touched, whatever the UPDATE wrote
-- (no service role may update these columns anyway: they are granted to none), and an
-- INSERT naming a payout is filled the same way or refused. Both sources are append-only
-- (00002), so the copy cannot go stale; invariants.CheckLedger compares them all the same
-- (paid_forms_carry_their_payout). The payout's rows must exist before the form's UPDATE
-- names them, as every writer already orders them (payouts.go, immediate refunds' export
-- hook, the pgbench baselines).
ALTER TABLE forms
    ADD COLUMN paid_date   date,
    ADD COLUMN paid_port   text,
    ADD COLUMN paid_agency text,
    ADD COLUMN paid_gross  numeric,
    ADD COLUMN paid_fee    numeric,
    ADD COLUMN paid_net    numeric;

-- The forms paid before this migration.
UPDATE forms f
   SET paid_date = p.paid_date, paid_port = p.port_code, paid_agency = p.agency_code,
       paid_gross = pf.gross_refund, paid_fee = pf.fee, paid_net = pf.net_refund
  FROM payout_forms pf JOIN payouts p ON p.id = pf.payout_id
 WHERE pf.form_id = f.id AND pf.payout_id = f.payout_id;

ALTER TABLE forms ADD CONSTRAINT forms_paid_copy CHECK (CASE
    WHEN payout_id IS NULL THEN num_nonnulls(paid_date, paid_port, paid_agency, paid_gross, paid_fee, paid_net) = 0
    ELSE num_nonnulls(paid_date, paid_agency, paid_gross, paid_fee, paid_net) = 5 END);

-- The owner's rights: row security hides a payout from a customs officer whose export
-- confirmation pays an immediate refund, and the copy must be whole all the same.
-- +goose StatementBegin
CREATE FUNCTION forms_copy_payout() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.payout_id IS NULL THEN
        NEW.paid_date := NULL; NEW.paid_port := NULL; NEW.paid_agency := NULL;
        NEW.paid_gross := NULL; NEW.paid_fee := NULL; NEW.paid_net := NULL;
        RETURN NEW;
    END IF;
    SELECT p.paid_date, p.port_code, p.agency_code, pf.gross_refund, pf.fee, pf.net_refund
      INTO NEW.paid_date, NEW.paid_port, NEW.paid_agency, NEW.paid_gross, NEW.paid_fee, NEW.paid_net
      FROM payout_forms pf JOIN payouts p ON p.id = pf.payout_id
     WHERE pf.payout_id = NEW.payout_id AND pf.form_id = NEW.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'form % names payout %, which has no row for it', NEW.number, NEW.payout_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER FUNCTION forms_copy_payout() OWNER TO taxrefund_owner;
REVOKE ALL ON FUNCTION forms_copy_payout() FROM PUBLIC;
CREATE TRIGGER forms_paid_copy BEFORE UPDATE ON forms FOR EACH ROW
    WHEN (NEW.payout_id IS DISTINCT FROM OLD.payout_id
          OR (NEW.paid_date, NEW.paid_port, NEW.paid_agency, NEW.paid_gross, NEW.paid_fee, NEW.paid_net)
             IS DISTINCT FROM (OLD.paid_date, OLD.paid_port, OLD.paid_agency, OLD.paid_gross, OLD.paid_fee, OLD.paid_net))
    EXECUTE FUNCTION forms_copy_payout();
CREATE TRIGGER forms_paid_copy_on_insert BEFORE INSERT ON forms FOR EACH ROW
    WHEN (NEW.payout_id IS NOT NULL
          OR num_nonnulls(NEW.paid_date, NEW.paid_port, NEW.paid_agency, NEW.paid_gross, NEW.paid_fee, NEW.paid_net) > 0)
    EXECUTE FUNCTION forms_copy_payout();

-- The refunds paid in a month but issued in another: a range of paid_date. A B-tree, as
-- forms_verified_at (00030): a form's row is rewritten where free space is when it is
-- paid. Partial: an unpaid form adds no entry, and the payment's update already changes
-- an indexed column (state), so it was never a heap-only update.
CREATE INDEX forms_paid_date ON forms (paid_date) WHERE paid_date IS NOT NULL;

-- +goose Down
DROP INDEX forms_paid_date;
DROP TRIGGER forms_paid_copy_on_insert ON forms;
DROP TRIGGER forms_paid_copy ON forms;
DROP FUNCTION forms_copy_payout();
ALTER TABLE forms DROP CONSTRAINT forms_paid_copy;
ALTER TABLE forms DROP COLUMN paid_date, DROP COLUMN paid_port, DROP COLUMN paid_agency,
    DROP COLUMN paid_gross, DROP COLUMN paid_fee, DROP COLUMN paid_net;
