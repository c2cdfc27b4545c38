// Package audit records who did what, when: one append-only audit_events row per change,
// written in the same transaction as the change.
package audit

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/db"
	"taxrefund/internal/idempotency"
)

// Queue appends the audit event of a change to b: actor (the caller's identity URI),
// action (e.g. "FORM_ISSUED"), object (a form number, a store code...), the request it
// came from, and details. Details never hold personal data in clear.
func Queue(b *pgx.Batch, actor, action, object string, requestID uuid.UUID, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	var rid *uuid.UUID
	if requestID != uuid.Nil {
		rid = &requestID
	}
	b.Queue(`INSERT INTO audit_events (actor, action, object, request_id, detail) VALUES ($1, $2, $3, $4, $5)`,
		actor, action, object, rid, detail)
}

// Close ends an idempotent change inside tx in one round trip: its audit event and the
// answer a retry of the same request will get.
func Close(ctx context.Context, tx pgx.Tx, key idempotency.Key, action, object string, detail map[string]any, answer any) error {
	b := &pgx.Batch{}
	Queue(b, key.Caller, action, object, key.RequestID, detail)
	if err := idempotency.Finish(b, key, answer); err != nil {
		return err
	}
	return db.SendBatch(ctx, tx, b)
}
