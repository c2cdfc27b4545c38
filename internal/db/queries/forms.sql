-- name: StoreForIssue :one
SELECT code, block_code, status FROM stores WHERE code = $1;

-- name: FormByNumber :one
SELECT * FROM forms WHERE number = $1;

-- name: FormByNumberForUpdate :one
SELECT * FROM forms WHERE number = $1 FOR UPDATE;

-- name: FormLines :many
SELECT * FROM form_lines WHERE form_id = ANY(@form_ids::uuid[]) ORDER BY form_id, line_no;

-- name: FormInvoices :many
SELECT * FROM form_invoices WHERE form_id = ANY(@form_ids::uuid[]) ORDER BY form_id, invoice_number;

-- name: ListStoreForms :many
-- Newest purchase date first; the page token is the last row's (purchase_date, id).
SELECT * FROM forms
 WHERE store_code = @store_code
   AND purchase_date BETWEEN @from_date AND @to_date
   AND (sqlc.narg(state)::text IS NULL OR state = sqlc.narg(state))
   AND (sqlc.narg(after_date)::date IS NULL OR (purchase_date, id) < (sqlc.narg(after_date)::date, sqlc.narg(after_id)::uuid))
 ORDER BY purchase_date DESC, id DESC
 LIMIT @page_size;

-- name: SameDayEligible :one
-- The traveller's live forms at this store on this day (DOMAIN.md §3 threshold aggregation).
SELECT coalesce(sum(eligible_amount), 0)::numeric AS total
  FROM forms
 WHERE doc_index = $1 AND purchase_date = $2 AND store_code = $3 AND state <> 'VOIDED';

-- name: InvoiceHolder :one
SELECT f.number FROM form_invoices i JOIN forms f ON f.id = i.form_id
 WHERE i.store_code = $1 AND i.invoice_number = $2 AND i.live;

-- name: CloseForm :exec
UPDATE forms SET state = @state, closed_at = @closed_at, close_reason = @close_reason WHERE id = @id;

-- name: ReleaseInvoices :exec
UPDATE form_invoices SET live = false WHERE form_id = $1;

-- name: Idempotency :one
SELECT method, request_hash, response FROM idempotency_keys WHERE caller = $1 AND request_id = $2;

-- name: InsertAudit :exec
INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, $2, $3, $4, $5);

-- name: InsertIdempotency :exec
INSERT INTO idempotency_keys (caller, request_id, method, request_hash, response) VALUES ($1, $2, $3, $4, $5);

-- name: DeskByCode :one
SELECT * FROM desks WHERE code = $1;

-- name: PayoutByID :one
SELECT * FROM payouts WHERE id = $1;

-- name: PayoutForms :many
SELECT pf.*, f.number FROM payout_forms pf JOIN forms f ON f.id = pf.form_id
 WHERE pf.payout_id = $1 ORDER BY pf.form_id;

-- name: FormsWithOutstandingPrepayment :many
-- Forms whose immediate-refund prepayment is neither completed, captured nor handed back.
SELECT form_id FROM prepayments WHERE form_id = ANY(@form_ids::uuid[]) AND state = 'PREPAID';
