// Package idempotency makes every mutating call safe to retry. A call writes its record
// (caller, request_id, hash of the request) first, in the transaction of its effects; a
// concurrent duplicate waits on the record's primary key, then fails with a unique
// violation and reads the stored answer instead of writing again.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
)

// Key identifies a mutating request: who sent it, its request_id and a hash of its
// content.
type Key struct {
	Caller    string
	RequestID uuid.UUID
	Hash      []byte
}

// Hash hashes a request's canonical bytes.
func Hash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// Begin writes k's record for method inside tx, before the call's effects. Its answer is
// filled in by Finish in the same transaction.
func Begin(ctx context.Context, tx pgx.Tx, k Key, method string) error {
	return db.New().InsertIdempotency(ctx, tx, db.InsertIdempotencyParams{
		Caller: k.Caller, RequestID: k.RequestID, Method: method, RequestHash: k.Hash, Response: []byte("{}"),
	})
}

// QueueBegin queues Begin's statement as the first of b, for a call that reads what it
// needs in the same round trip as it takes its record. (In db.InPipelinedTx, BEGIN and
// the party's setting go in front of it; they take no lock, so the record is still the
// first thing the transaction waits on.)
func QueueBegin(b *pgx.Batch, k Key, method string) {
	b.Queue(`INSERT INTO idempotency_keys (caller, request_id, method, request_hash, response) VALUES ($1, $2, $3, $4, '{}')`,
		k.Caller, k.RequestID, method, k.Hash)
}

// Finish queues the statement storing the call's answer.
func Finish(b *pgx.Batch, k Key, answer any) error {
	data, err := json.Marshal(answer)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	b.Queue(`UPDATE idempotency_keys SET response = $3 WHERE caller = $1 AND request_id = $2`, k.Caller, k.RequestID, data)
	return nil
}

// Queue queues k's record with its answer, for calls that know their answer before they
// write (one batch, one round trip). It must be the batch's first statement.
func Queue(b *pgx.Batch, k Key, method string, answer any) error {
	data, err := json.Marshal(answer)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	b.Queue(`INSERT INTO idempotency_keys (caller, request_id, method, request_hash, response) VALUES ($1, $2, $3, $4, $5)`,
		k.Caller, k.RequestID, method, k.Hash, data)
	return nil
}

// IsDuplicate reports whether err is the unique violation of a request already made.
func IsDuplicate(err error) bool {
	return db.IsUniqueViolation(err, "idempotency_keys_pkey")
}

// Replay reads the stored answer of an earlier request into out, or refuses a request_id
// reused for something else. Read from the pool, the answer is returned only once the
// synchronous standby holds it (db.AwaitReplicated).
func Replay(ctx context.Context, q db.DBTX, k Key, method string, out any) error {
	row, err := db.New().Idempotency(ctx, q, db.IdempotencyParams{Caller: k.Caller, RequestID: k.RequestID})
	if err != nil {
		return fmt.Errorf("read idempotency record: %w", err)
	}
	if row.Method != method || !bytes.Equal(row.RequestHash, k.Hash) {
		return fault.Field(fault.Precondition, "REQUEST_ID_REUSED", "request_id",
			"this request_id was already used for a different request; generate a new one")
	}
	if err := json.Unmarshal(row.Response, out); err != nil {
		return fmt.Errorf("decode stored answer: %w", err)
	}
	// The record may come from a transaction committed on the primary only (its wait for
	// the synchronous standby cancelled): it is an answer once the standby has it.
	if err := db.AwaitReplicated(ctx, q); err != nil {
		return fmt.Errorf("replay: wait for the standby: %w", err)
	}
	return nil
}

// Result turns the outcome of a write into the call's answer: a duplicate request gets
// the stored first answer, a domain error passes through, anything else is wrapped.
func Result[T any](ctx context.Context, q db.DBTX, k Key, method string, err error, out T) (T, error) {
	var zero T
	if IsDuplicate(err) {
		var first T
		if err := Replay(ctx, q, k, method, &first); err != nil {
			return zero, err
		}
		return first, nil
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return zero, err
		}
		return zero, fmt.Errorf("%s: %w", method, err)
	}
	return out, nil
}
