-- +goose Up

-- Seal format 2 covers every column that carries meaning: besides what format 1 covered,
-- the journal transaction's created_at and the seal's own sealed_at and format. Seals
-- written before this migration keep format 1 and are verified under it; the sealer
-- writes format 2 from now on (internal/seal). The column has no default: the sealer
-- names the format of every seal it writes.
ALTER TABLE seals ADD COLUMN format smallint NOT NULL DEFAULT 1 CHECK (format IN (1, 2));
ALTER TABLE seals ALTER COLUMN format DROP DEFAULT;

-- +goose Down
-- Format 2 seals cannot be verified without their format: going down leaves them broken.
ALTER TABLE seals DROP COLUMN format;
