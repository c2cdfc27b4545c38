-- +goose Up

-- One capture date (DOMAIN.md §6, "Capture deadline": committed date + 3 working days by
-- the authority's calendar). prepayments.capture_due was computed once, at payment, while
-- the capture job and the refund point's list recomputed it from the calendar as it stands:
-- after a change of the calendar (a holiday, an adjusted working day 调休) the traveller
-- and the metrics were told one date and the job captured on another. From here
-- capture_due is the one source, kept right by the database:
--
--   - a change of calendar_days (insert, update or delete, by whatever writer) recomputes,
--     in its own transaction, capture_due of every PREPAID prepayment whose window it can
--     move: committed_date < day <= capture_due (add_working_days looks at no other day);
--   - a new prepayment's capture_due is computed on insert, whatever the writer gave;
--   - the two are serialized by an advisory lock on the calendar: a change takes it
--     exclusive before recomputing, a payment shared before computing (calendar_read_lock),
--     so a payment that computed from the calendar before a change is committed before the
--     change recomputes (and recomputed by it), or computes after the change committed.
--     Under READ COMMITTED each statement after the lock sees what committed before it.
--
-- A CAPTURED, COMPLETED or RETURNED prepayment's capture_due is history and stays.
-- prepayments has no row security and no append-only rule; its CHECK capture_due >
-- committed_date holds, since add_working_days(d, 3) > d. The capture job and the list
-- read capture_due (the job through the partial index prepayments_capture_due).

-- The shared side of the calendar's lock: taken before a capture date is computed from the
-- calendar in a transaction that will store it.
-- +goose StatementBegin
CREATE FUNCTION calendar_read_lock() RETURNS void LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock_shared(hashtextextended('calendar_days', 4))
$$;
-- +goose StatementEnd
ALTER FUNCTION calendar_read_lock() OWNER TO taxrefund_owner;

-- After a calendar row changes: the PREPAID prepayments it moves get their capture date
-- again. The number moved, summed over the transaction, is left in the transaction-local
-- setting taxrefund.capture_due_moved for the caller's audit event. The owner's rights: no
-- service role may update capture_due itself.
-- +goose StatementBegin
CREATE FUNCTION calendar_recompute_capture_due() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    days date[];
    moved integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        days := ARRAY[NEW.day];
    ELSIF TG_OP = 'DELETE' THEN
        days := ARRAY[OLD.day];
    ELSIF OLD.day = NEW.day AND OLD.working = NEW.working THEN
        RETURN NULL; -- the note only
    ELSE
        days := ARRAY[OLD.day, NEW.day];
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('calendar_days', 4));
    UPDATE prepayments p SET capture_due = add_working_days(p.committed_date, 3)
     WHERE p.state = 'PREPAID'
       AND EXISTS (SELECT 1 FROM unnest(days) AS d WHERE p.committed_date < d AND d <= p.capture_due)
       AND p.capture_due <> add_working_days(p.committed_date, 3);
    GET DIAGNOSTICS moved = ROW_COUNT;
    PERFORM set_config('taxrefund.capture_due_moved',
        (coalesce(nullif(current_setting('taxrefund.capture_due_moved', true), ''), '0')::integer + moved)::text, true);
    RETURN NULL;
END $$;
-- +goose StatementEnd
ALTER FUNCTION calendar_recompute_capture_due() OWNER TO taxrefund_owner;
CREATE TRIGGER calendar_days_capture_due AFTER INSERT OR UPDATE OR DELETE ON calendar_days
    FOR EACH ROW EXECUTE FUNCTION calendar_recompute_capture_due();

-- A new prepayment's capture date is the calendar's, computed under the shared lock.
-- +goose StatementBegin
CREATE FUNCTION prepayment_capture_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM calendar_read_lock();
    NEW.capture_due := add_working_days(NEW.committed_date, 3);
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER FUNCTION prepayment_capture_due() OWNER TO taxrefund_owner;
CREATE TRIGGER prepayments_capture_due BEFORE INSERT ON prepayments
    FOR EACH ROW EXECUTE FUNCTION prepayment_capture_due();

-- Rows stored before this migration: as the calendar now says.
UPDATE prepayments SET capture_due = add_working_days(committed_date, 3)
 WHERE state = 'PREPAID' AND capture_due <> add_working_days(committed_date, 3);

-- +goose Down
DROP TRIGGER prepayments_capture_due ON prepayments;
DROP FUNCTION prepayment_capture_due();
DROP TRIGGER calendar_days_capture_due ON calendar_days;
DROP FUNCTION calendar_recompute_capture_due();
DROP FUNCTION calendar_read_lock();
