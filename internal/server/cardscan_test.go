package server_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"

	deskv1 "taxrefund/api/taxrefund/desk/v1"
	"taxrefund/internal/pan"
	"taxrefund/internal/refund"
)

// Identifiers and digests are not free text: a UUID's or a long hex digest's digits may
// by chance form a Luhn-valid run, so they are taken out before the scan. A card number
// glued to letters outside a-f ("tok_", "AGR") stays visible.
var (
	uuidText = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	hexText  = regexp.MustCompile(`(?i)\\x[0-9a-f]*|[0-9a-f]*[a-f][0-9a-f]*`)
	// bytea's escape encoding writes an unprintable byte as \ and three octal digits.
	octalEscape = regexp.MustCompile(`\\[0-7]{3}`)
)

// scanForCardNumbers reads every text, character, bytea (escape encoding), json, jsonb
// and array column of every table of the public schema and returns "table.column: digits"
// for each value holding a card number (package pan), and the number of values read.
func scanForCardNumbers(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]string, int) {
	t.Helper()
	ctx := context.Background()
	rows, err := q.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
		JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
		WHERE c.table_schema = 'public' AND tb.table_type = 'BASE TABLE'
		  AND c.data_type IN ('text', 'character varying', 'character', 'bytea', 'json', 'jsonb', 'ARRAY')
		ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ table, name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.table, &c.name, &c.typ)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	values := 0
	for _, c := range cols {
		expr := pgx.Identifier{c.name}.Sanitize() + "::text"
		if c.typ == "bytea" {
			expr = "encode(" + pgx.Identifier{c.name}.Sanitize() + ", 'escape')"
		}
		rows, err := q.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s IS NOT NULL`, expr, pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.name}.Sanitize()))
		if err != nil {
			t.Fatalf("scan %s.%s: %v", c.table, c.name, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("scan %s.%s: %v", c.table, c.name, err)
		}
		for _, s := range texts {
			values++
			s = hexText.ReplaceAllString(uuidText.ReplaceAllString(octalEscape.ReplaceAllString(s, "|"), "|"), "|")
			if n, ok := pan.Find(s); ok {
				hits = append(hits, c.table+"."+c.name+": "+n)
			}
		}
	}
	return hits, values
}

// TestNoCardNumberStored drives the seeded run, then tries to prepay with the card brands'
// test numbers in the acquirer token and the agreement reference (each refused, naming
// the field), and scans every value of every text-like column of every table for a
// Luhn-valid run of 13 to 19 digits: there is none. The broken control stores one in an
// existing table and in a new one, and the same scan finds exactly those.
func TestNoCardNumberStored(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)

	for _, c := range []struct{ token, agreement, field string }{
		{"tok_4111111111111111", "AGR-C-1", "pre_authorization.acquirer_token"},
		{"tok_5555-5555-5555-4444", "AGR-C-2", "pre_authorization.acquirer_token"},
		{"3782 822463 10005", "AGR-C-3", "pre_authorization.acquirer_token"},
		{"tok_5f2c9a7e81d04c", "AGR 6200 0000 0000 0005", "agreement_reference"},
	} {
		_, err := env.desk(t, refundPt).PayImmediateRefund(ctx, &deskv1.PayImmediateRefundRequest{
			RequestId: uuid.NewString(), FormNumber: refund.NewFormNumber(), PresentedDocument: passport(secDocD), AgreementReference: c.agreement,
			PreAuthorization: &deskv1.PreAuthorization{AcquirerToken: c.token, CardLast4: "0123", CardExpiry: "2027-12", AuthorizedAmount: "120.00"},
			DeparturePort:    "TFU",
		})
		checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{c.field}})
	}

	hits, values := scanForCardNumbers(t, env.pool)
	if values < 100 {
		t.Fatalf("scanned only %d values: the seeded run stored too little to show anything", values)
	}
	t.Logf("scanned %d values", values)
	for _, h := range hits {
		t.Errorf("card number stored: %s", h)
	}

	t.Run("broken control: a stored card number is found", func(t *testing.T) {
		if _, err := env.pool.Exec(ctx, `CREATE TABLE card_probe (note text, blob bytea, doc jsonb)`); err != nil {
			t.Fatal(err)
		}
		if _, err := env.pool.Exec(ctx, `INSERT INTO card_probe VALUES ('token tok_4012888888881881', '\x00'::bytea || convert_to('3530-1113-3330-0000', 'UTF8'), '{"n": "36227206271667"}')`); err != nil {
			t.Fatal(err)
		}
		if _, err := env.pool.Exec(ctx, `INSERT INTO audit_events (actor, action, object, detail) VALUES ('test', 'LEAK', 'x', jsonb_build_object('n', '6011 1111 1111 1117'))`); err != nil {
			t.Fatal(err)
		}
		hits, _ := scanForCardNumbers(t, env.pool)
		want := []string{
			"audit_events.detail: 6011111111111117",
			"card_probe.blob: 3530111333300000",
			"card_probe.doc: 36227206271667",
			"card_probe.note: 4012888888881881",
		}
		slices.Sort(hits)
		if !slices.Equal(hits, want) {
			t.Errorf("the scan found %q, want exactly %q", hits, want)
		}
	})
}
