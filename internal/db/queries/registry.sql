-- name: GetStore :one
SELECT * FROM stores WHERE code = $1;

-- name: GetStoreForUpdate :one
SELECT * FROM stores WHERE code = $1 FOR UPDATE;

-- name: ListStores :many
SELECT * FROM stores
 WHERE (sqlc.narg(block_code)::text IS NULL OR block_code = sqlc.narg(block_code))
   AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
 ORDER BY code;

-- name: InsertStore :one
INSERT INTO stores (code, credit_code, name, block_code, credit_grade, immediate_refund, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'ACTIVE', $7)
RETURNING *;

-- name: SetStoreStatus :one
UPDATE stores SET status = $2 WHERE code = $1 RETURNING *;

-- name: BlockExists :one
SELECT EXISTS (SELECT 1 FROM blocks WHERE code = $1);

-- name: AgencyExists :one
SELECT EXISTS (SELECT 1 FROM agencies WHERE code = $1);

-- name: RegionExists :one
SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1);

-- name: ListBlocks :many
SELECT * FROM blocks ORDER BY code;

-- name: ListPorts :many
SELECT * FROM ports ORDER BY code;

-- name: ListAgencies :many
SELECT * FROM agencies ORDER BY code;

-- name: ListDesks :many
SELECT * FROM desks ORDER BY code;

-- name: ListParameters :many
SELECT * FROM parameters
 WHERE (sqlc.narg(name)::text IS NULL OR name = sqlc.narg(name))
 ORDER BY name, scope, valid_from;

-- name: LatestParameterFrom :one
SELECT coalesce(max(valid_from), '0001-01-01')::date AS latest FROM parameters WHERE name = $1 AND scope = $2;

-- name: InsertParameter :one
INSERT INTO parameters (name, scope, valid_from, value, note) VALUES ($1, $2, $3, $4, $5) RETURNING *;

-- name: SetStoreReview :one
UPDATE stores SET under_review = $2 WHERE code = $1 RETURNING *;

-- name: SetStoreGrade :one
UPDATE stores SET credit_grade = $2 WHERE code = $1 RETURNING *;
