package risk

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/db"
	"taxrefund/internal/fault"
	"taxrefund/internal/params"
	"taxrefund/internal/refund"
)

// MaxVelocityDays bounds risk_velocity_days: the window the rating reads of a document.
const MaxVelocityDays = 90

// Service rates forms on PostgreSQL and records inspections.
type Service struct {
	pool   *pgxpool.Pool
	params *params.Cache
	now    func() time.Time
}

// New returns a Service; now nil means time.Now.
func New(pool *pgxpool.Pool, p *params.Cache, now func() time.Time) *Service {
	return &Service{pool: pool, params: p, now: db.Clock(now)}
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Inspection results.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Rated is an ISSUED form's rating with what the export's confirmation checks.
type Rated struct {
	Assessment
	FormID    uuid.UUID
	StoreCode string
	// Inspection is FAILED if any inspection of the form failed, else PASSED if one
	// passed, else "".
	Inspection string
	// Serials are the serial numbers recorded at issuance of the lines at or above the
	// high-value threshold, by line number: customs confirm each.
	Serials map[int]string
}

// The rating's reads, in one round trip. Only ISSUED forms are rated: the others are no
// longer waiting for customs.
const (
	ratedFormsSQL = `SELECT f.id, f.number, f.store_code, f.eligible_amount, f.issued_at, f.purchase_date, f.last_entry_date, s.under_review
		FROM forms f JOIN stores s ON s.code = f.store_code WHERE f.number = ANY($1::text[]) AND f.state = 'ISSUED'`
	ratedLinesSQL = `SELECT f.number, l.line_no, l.amount, l.serial_number FROM forms f JOIN form_lines l ON l.form_id = f.id
		WHERE f.number = ANY($1::text[]) AND f.state = 'ISSUED' ORDER BY f.number, l.line_no`
	// The document's live forms issued in the widest velocity window or on a rated form's
	// purchase date, through forms_document (doc_index, purchase_date).
	documentFormsSQL = `SELECT r.number, g.number, g.store_code, g.purchase_date, g.issued_at, g.eligible_amount
		FROM forms r JOIN forms g ON g.doc_index = r.doc_index
		WHERE r.number = ANY($1::text[]) AND r.state = 'ISSUED' AND g.state <> 'VOIDED'
		  AND (g.purchase_date >= $2 OR g.purchase_date = r.purchase_date)`
	inspectionsSQL = `SELECT f.number, i.result FROM forms f JOIN inspections i ON i.form_id = f.id WHERE f.number = ANY($1::text[])`
)

// Assess rates the ISSUED forms among numbers now, as the caller's party.
func (s *Service) Assess(ctx context.Context, numbers []string) (map[string]Rated, error) {
	return s.Rate(ctx, db.Scope(s.pool), numbers, s.now())
}

// Rate rates the ISSUED forms among numbers as of at, reading through q (the pool as the
// caller's party, or a transaction). Forms in other states are left out of the answer.
func (s *Service) Rate(ctx context.Context, q db.Batcher, numbers []string, at time.Time) (map[string]Rated, error) {
	if len(numbers) == 0 {
		return nil, nil
	}
	table, err := s.params.Get(ctx)
	if err != nil {
		return nil, err
	}
	type row struct {
		id       uuid.UUID
		facts    Facts
		review   bool
		lines    []Line
		serials  map[int]string
		document []Other
		results  []string
	}
	byNumber := map[string]*row{}
	var order []string
	b := &pgx.Batch{}
	b.Queue(ratedFormsSQL, numbers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			r := &row{serials: map[int]string{}}
			f := &r.facts.Form
			if err := rows.Scan(&r.id, &f.Number, &f.StoreCode, &f.Eligible, &f.IssuedAt, &f.PurchaseDate, &f.LastEntry, &r.review); err != nil {
				return err
			}
			byNumber[f.Number] = r
			order = append(order, f.Number)
		}
		return rows.Err()
	})
	b.Queue(ratedLinesSQL, numbers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var number string
			var l Line
			var serial *string
			if err := rows.Scan(&number, &l.No, &l.Amount, &serial); err != nil {
				return err
			}
			if r := byNumber[number]; r != nil {
				r.lines = append(r.lines, l)
				if serial != nil {
					r.serials[l.No] = *serial
				}
			}
		}
		return rows.Err()
	})
	from := refund.LocalDate(at).AddDate(0, 0, -MaxVelocityDays-1)
	b.Queue(documentFormsSQL, numbers, from).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var number string
			var o Other
			if err := rows.Scan(&number, &o.Number, &o.StoreCode, &o.PurchaseDate, &o.IssuedAt, &o.Eligible); err != nil {
				return err
			}
			if r := byNumber[number]; r != nil {
				r.document = append(r.document, o)
			}
		}
		return rows.Err()
	})
	b.Queue(inspectionsSQL, numbers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var number, result string
			if err := rows.Scan(&number, &result); err != nil {
				return err
			}
			if r := byNumber[number]; r != nil {
				r.results = append(r.results, result)
			}
		}
		return rows.Err()
	})
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("rate forms: %w", err)
	}
	out := make(map[string]Rated, len(byNumber))
	for _, number := range order {
		r := byNumber[number]
		r.facts.Form.Lines = r.lines
		r.facts.Document = r.document
		r.facts.StoreUnderReview = r.review
		r.facts.At = at
		p := ParamsOn(table, r.facts.Form.PurchaseDate)
		rated := Rated{Assessment: Assess(r.facts, p), FormID: r.id, StoreCode: r.facts.Form.StoreCode, Serials: map[int]string{}}
		for _, l := range r.lines {
			if serial, ok := r.serials[l.No]; ok && RequiresSerial(p, l.Amount) {
				rated.Serials[l.No] = serial
			}
		}
		switch {
		case slices.Contains(r.results, Failed):
			rated.Inspection = Failed
		case slices.Contains(r.results, Passed):
			rated.Inspection = Passed
		}
		out[number] = rated
	}
	return out, nil
}

// Gate decides whether customs may confirm the export of a rated form: confirmed are the
// units per line, serials the serial numbers customs read per line. Rejecting the export
// (0 units on every line) is always allowed: it pays nothing. Otherwise every high-value
// line presented must carry the serial recorded at issuance, and a RED form needs a
// passing inspection and no failed one.
func (r Rated) Gate(number string, confirmed map[int]int32, serials map[int]string) error {
	presented := false
	for _, q := range confirmed {
		presented = presented || q > 0
	}
	if !presented {
		return nil
	}
	l := fault.List{Kind: fault.Precondition, Reason: "SERIAL_NOT_CONFIRMED",
		Message: fmt.Sprintf("form %s: the serial number of each high-value line presented must match the one recorded at issuance", number)}
	for _, no := range slices.Sorted(maps.Keys(r.Serials)) {
		if confirmed[no] == 0 {
			continue
		}
		field := fmt.Sprintf("lines[line_no=%d].serial_number", no)
		switch got := serials[no]; {
		case got == "":
			l.Add(field, "line %d is high value: read and send the goods' serial number", no)
		case !SameSerial(got, r.Serials[no]):
			l.Add(field, "line %d: the serial number read does not match the one recorded at issuance", no)
		}
	}
	if err := l.Err(); err != nil {
		return err
	}
	if r.Level != Red {
		return nil
	}
	switch r.Inspection {
	case Passed:
		return nil
	case Failed:
		return fault.New(fault.Precondition, "INSPECTION_FAILED",
			fmt.Sprintf("form %s failed its inspection: the export cannot be confirmed (confirm 0 units to reject it)", number))
	}
	return fault.New(fault.Precondition, "INSPECTION_REQUIRED", "inspection required: "+r.Summary()).With("rules", strings.Join(r.Codes(), ","))
}

// SameSerial compares serial numbers as customs read them: letters in either case.
func SameSerial(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// Flag records the reasons of a RED form customs met (once per form and rule), for the
// monthly figures. It runs in its own short transaction: the refusal that follows must
// not take the record with it.
func (s *Service) Flag(ctx context.Context, number string, r Rated) error {
	if r.Level != Red {
		return nil
	}
	b := &pgx.Batch{}
	queueFlags(b, r, s.now())
	if err := db.SendBatch(ctx, s.pool, b); err != nil {
		return fmt.Errorf("flag form %s: %w", number, err)
	}
	return nil
}

func queueFlags(b *pgx.Batch, r Rated, at time.Time) {
	codes, texts := make([]string, len(r.Reasons)), make([]string, len(r.Reasons))
	for i, reason := range r.Reasons {
		codes[i], texts[i] = reason.Code, truncate(reason.Text, 500)
	}
	b.Queue(`INSERT INTO risk_flags (form_id, store_code, rule, detail, flagged_at)
		SELECT $1, $2, c, t, $5 FROM unnest($3::text[], $4::text[]) AS u(c, t) ON CONFLICT DO NOTHING`,
		r.FormID, r.StoreCode, codes, texts, at)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// ParseSerial checks a serial number's shape: 1 to 64 letters, digits, '.', '/' or '-',
// starting with a letter or digit.
func ParseSerial(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return s, false
	}
	for i, c := range s {
		alnum := c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		if !alnum && (i == 0 || !strings.ContainsRune("./-", c)) {
			return s, false
		}
	}
	return s, true
}

// CheckSerials refuses an application whose lines at or above the high-value threshold
// in force on its purchase date carry no serial number.
func CheckSerials(t *params.Table, date time.Time, lines []refund.Line) error {
	p := ParamsOn(t, date)
	l := fault.List{Kind: fault.Invalid, Reason: "SERIAL_NUMBER_REQUIRED", Message: "high-value goods need their serial number"}
	for i, line := range lines {
		if line.SerialNumber == "" && RequiresSerial(p, line.Amount) {
			l.Add(fmt.Sprintf("lines[%d].serial_number", i), "the line is %s CNY, at or above %s: give the goods' serial number",
				line.Amount.StringFixed(2), p.SerialThreshold.StringFixed(2))
		}
	}
	return l.Err()
}
