package risk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"taxrefund/internal/audit"
	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/refund"
)

// Inspection is a customs officer's inspection of a form's goods.
type Inspection struct {
	ID         uuid.UUID
	FormNumber string
	Port       string
	Officer    string
	Result     string
	Note       string
	// Rules are the codes of the reasons the form was RED for when inspected (none for a
	// GREEN form customs chose to inspect).
	Rules     []string
	CreatedAt time.Time
}

// InspectRequest records an inspection at the officer's port.
type InspectRequest struct {
	Idem    idempotency.Key
	Port    string
	Officer string
	Number  string
	Result  string
	Note    string
}

const methodInspect = "RecordInspection"

// Inspect records an inspection of an ISSUED form, idempotently by request_id, with the
// form's RED reasons (also recorded as flags) and an audit event, in one transaction.
func (s *Service) Inspect(ctx context.Context, req InspectRequest) (Inspection, error) {
	if !refund.ValidFormNumber(req.Number) {
		return Inspection{}, fault.Field(fault.Invalid, "FORM_NUMBER", "form_number", "not a form number (check the barcode or the typing)")
	}
	if req.Result != Passed && req.Result != Failed {
		return Inspection{}, fault.Field(fault.Invalid, "INVALID_REQUEST", "result", "must be PASSED or FAILED")
	}
	var out Inspection
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := idempotency.Begin(ctx, tx, req.Idem, methodInspect); err != nil {
			return err
		}
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM forms WHERE number = $1 FOR SHARE`, req.Number).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.Field(fault.NotFound, "FORM_NOT_FOUND", "form_number", fmt.Sprintf("no form %s", req.Number))
		}
		if err != nil {
			return err
		}
		if err := refund.RequireState(req.Number, refund.State(state), refund.Issued, "inspected"); err != nil {
			return err
		}
		now := s.now()
		rated, err := s.Rate(ctx, tx, []string{req.Number}, now)
		if err != nil {
			return err
		}
		r := rated[req.Number]
		out = Inspection{
			ID: uuid.New(), FormNumber: req.Number, Port: req.Port, Officer: req.Officer,
			Result: req.Result, Note: req.Note, Rules: r.Codes(), CreatedAt: now.UTC(),
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO inspections (id, form_id, port_code, officer, result, note, rules, request_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			out.ID, r.FormID, req.Port, req.Officer, req.Result, req.Note, out.Rules, req.Idem.RequestID, out.CreatedAt)
		if r.Level == Red {
			queueFlags(b, r, now)
		}
		audit.Queue(b, req.Idem.Caller, "FORM_INSPECTED", req.Number, req.Idem.RequestID,
			map[string]any{"port": req.Port, "result": req.Result, "rules": out.Rules})
		if err := idempotency.Finish(b, req.Idem, out); err != nil {
			return err
		}
		return db.SendBatch(ctx, tx, b)
	})
	return idempotency.Result(ctx, s.pool, req.Idem, methodInspect, err, out)
}
