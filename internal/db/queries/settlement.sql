-- name: MonthPayouts :many
-- An agency's payouts of a month, with their forms: the lines of a declaration.
SELECT p.id AS payout_id, p.paid_at, p.receipt_reference, f.number, f.store_code, f.verified_port, f.verified_at,
       pf.gross_refund, pf.fee, pf.net_refund
  FROM payouts p
  JOIN payout_forms pf ON pf.payout_id = p.id
  JOIN forms f ON f.id = pf.form_id
 WHERE p.agency_code = @agency_code AND p.paid_date >= @month_start AND p.paid_date < @month_end
 ORDER BY p.paid_at, f.number;

-- name: DeclarationLines :many
SELECT p.id AS payout_id, p.paid_at, p.receipt_reference, f.number, f.store_code, f.verified_port, f.verified_at,
       pf.gross_refund, pf.fee, pf.net_refund
  FROM declaration_payouts dp
  JOIN payouts p ON p.id = dp.payout_id
  JOIN payout_forms pf ON pf.payout_id = p.id
  JOIN forms f ON f.id = pf.form_id
 WHERE dp.declaration_id = $1
 ORDER BY p.paid_at, f.number;

-- name: GetDeclaration :one
SELECT * FROM declarations WHERE id = $1;

-- name: GetDeclarationForUpdate :one
SELECT * FROM declarations WHERE id = $1 FOR UPDATE;

-- name: ListDeclarations :many
SELECT * FROM declarations
 WHERE (sqlc.narg(agency_code)::text IS NULL OR agency_code = sqlc.narg(agency_code))
   AND (sqlc.narg(month)::date IS NULL OR month = sqlc.narg(month))
   AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
 ORDER BY month DESC, agency_code, declared_at DESC;

-- name: InsertDeclaration :exec
INSERT INTO declarations (id, agency_code, month, status, declared_by, declared_at, forms, gross_refund, fee, net_refund)
VALUES ($1, $2, $3, 'DECLARED', $4, $5, $6, $7, $8, $9);

-- name: InsertDeclarationPayouts :exec
INSERT INTO declaration_payouts (declaration_id, payout_id) SELECT $1, unnest(@payout_ids::uuid[]);

-- name: ReviewDeclaration :exec
UPDATE declarations SET status = $2, reviewed_by = $3, reviewed_at = $4, return_reasons = $5, txn_id = $6 WHERE id = $1;

-- name: SettleDeclaredForms :exec
UPDATE forms SET state = 'SETTLED'
 WHERE payout_id IN (SELECT payout_id FROM declaration_payouts WHERE declaration_id = $1) AND state = 'REFUNDED';

-- name: CloseMonth :exec
INSERT INTO closed_months (month, closed_by) VALUES ($1, $2) ON CONFLICT (month) DO NOTHING;

-- name: ClosedMonth :one
SELECT * FROM closed_months WHERE month = $1;

-- name: IsMonthClosed :one
SELECT EXISTS (SELECT 1 FROM closed_months WHERE month = $1);

-- name: DeskAgency :one
SELECT agency_code FROM desks WHERE code = $1;
