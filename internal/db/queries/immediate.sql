-- name: StoreImmediate :one
SELECT s.immediate_refund, b.region_code FROM stores s JOIN blocks b ON b.code = s.block_code WHERE s.code = $1;

-- name: DesignatedPorts :many
SELECT port_code FROM designated_ports
 WHERE region_code = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2)
 ORDER BY port_code;

-- name: AddWorkingDays :one
SELECT add_working_days(@day::date, @n::int)::date;

-- name: PrepaidOnDay :one
SELECT coalesce(sum(net_refund), 0)::numeric AS total
  FROM prepayments WHERE doc_index = $1 AND paid_date = $2 AND state <> 'RETURNED';

-- name: PrepaymentOfForm :one
SELECT * FROM prepayments WHERE form_id = $1;

-- name: PrepaymentOfFormForUpdate :one
SELECT * FROM prepayments WHERE form_id = $1 FOR UPDATE;

-- name: SetCalendarDay :exec
INSERT INTO calendar_days (day, working, note) VALUES ($1, $2, $3)
ON CONFLICT (day) DO UPDATE SET working = excluded.working, note = excluded.note;
