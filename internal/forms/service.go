// Package forms runs the life of refund forms on PostgreSQL: issuing (DOMAIN.md §2–§4),
// voiding, customs verification and expiry (§5), each with its ledger entries (§8) in the
// same transaction. The rules come from package refund; this package reads and writes.
package forms

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/idempotency"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/pii"
	"taxrefund/internal/refund"
)

// Service issues, voids, verifies and expires forms.
type Service struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	ledger *ledger.Store
	keys   *pii.Keyring
	params *params.Cache
	now    func() time.Time
	log    *slog.Logger

	exportHook ExportHook
}

// Deps are what a Service needs.
type Deps struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Store
	Keys   *pii.Keyring
	Params *params.Cache
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// New returns a Service.
func New(d Deps) *Service {
	now := db.Clock(d.Now)
	return &Service{pool: d.Pool, q: db.New(), ledger: d.Ledger, keys: d.Keys, params: d.Params, now: now, log: d.Log}
}

// Line is a line of a form as stored.
type Line struct {
	refund.Line
	No int
	// ConfirmedQty is the quantity customs confirmed; nil until verified.
	ConfirmedQty *int32
}

// Verification is the customs confirmation of a form's export.
type Verification struct {
	Port     string
	Officer  string
	At       time.Time
	Eligible decimal.Decimal
	Gross    decimal.Decimal
}

// Form is a refund form as the APIs show it: the document number only masked.
type Form struct {
	ID             uuid.UUID
	Number         string
	StoreCode      string
	State          refund.State
	DocType        refund.DocumentType
	DocCountry     string
	DocMasked      string
	Nationality    string
	PurchaseDate   time.Time
	IssuedAt       time.Time
	ExportDeadline time.Time
	Invoices       []refund.Invoice
	Lines          []Line
	Eligible       decimal.Decimal
	Gross          decimal.Decimal
	Verification   *Verification
	PayoutID       *uuid.UUID
	ClosedAt       *time.Time
}

// confirmed returns the confirmed quantities of f's lines, or nil if not verified.
func (f Form) confirmed() []int32 {
	if f.Verification == nil {
		return nil
	}
	out := make([]int32, len(f.Lines))
	for i, l := range f.Lines {
		if l.ConfirmedQty != nil {
			out[i] = *l.ConfirmedQty
		}
	}
	return out
}

// LineRefund is line i's refund (its confirmed part once verified), rounded for display.
func (f Form) LineRefund(i int) decimal.Decimal {
	lines := make([]refund.Line, len(f.Lines))
	for j, l := range f.Lines {
		lines[j] = l.Line
	}
	return refund.LineRefund(lines, f.confirmed(), i)
}

// Idempotency identifies a mutating request (see package idempotency).
type Idempotency = idempotency.Key

// HashOf hashes a request's canonical bytes.
func HashOf(b []byte) []byte { return idempotency.Hash(b) }

func notFound(number string) error {
	return fault.Field(fault.NotFound, "FORM_NOT_FOUND", "form_number", fmt.Sprintf("no form %s", number))
}

var decimalZero = decimal.Zero
