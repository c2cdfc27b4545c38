-- +goose Up

-- The seal queue without its unique index on (chain, row_id) (BENCH.md, "Write cost:
-- the hot accounts"). Every journal transaction and audit event queues itself for
-- sealing (00005): the unique index cost each of them an index entry, two per form,
-- and nothing that protects the chain. A row is sealed once by the seals' own unique
-- (chain, row_id); the sealer drops a queue entry whose row is already sealed or twice
-- in its batch (internal/seal, nextQueued) and deletes its entries by queue number; the
-- verification finds a row neither sealed nor queued as before.
ALTER TABLE seal_queue DROP CONSTRAINT seal_queue_chain_row_id_key;

-- +goose Down
DELETE FROM seal_queue q USING seal_queue o
 WHERE o.chain = q.chain AND o.row_id = q.row_id AND o.queued < q.queued;
ALTER TABLE seal_queue ADD CONSTRAINT seal_queue_chain_row_id_key UNIQUE (chain, row_id);
