package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"taxrefund/internal/console"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	deskv1 "taxrefund/api/taxrefund/desk/v1"
	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/agency"
	"taxrefund/internal/authority"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/desk"
	"taxrefund/internal/fault"
	"taxrefund/internal/forms"
	"taxrefund/internal/immediate"
	"taxrefund/internal/ledger"
	"taxrefund/internal/params"
	"taxrefund/internal/payouts"
	"taxrefund/internal/pki"
	"taxrefund/internal/registry"
	"taxrefund/internal/seal"
	"taxrefund/internal/server"
	"taxrefund/internal/settlement"
	"taxrefund/internal/store"
	"taxrefund/internal/tracing"
)

// Extra client certificates of the security tests, beside the harness's identities.
const (
	cashierTFU = "desk-TFU-01"  // agency AG-CD, port TFU
	refundPt   = "desk-JFB-RP"  // AG-CQ's refund point in block JFB
	agencyCD   = "agency-AG-CD" // AG-CD's back office
)

var secIdentities = map[string]string{
	cashierTFU: "taxrefund://desk/TFU-01/cashier-9",
	refundPt:   "taxrefund://desk/JFB-RP/cashier-7",
	agencyCD:   "taxrefund://agency/AG-CD/backoffice-2",
}

// secOptions vary the security harness's server.
type secOptions struct {
	limits *server.Limits
	// tls, when set, changes the server's TLS configuration: the broken controls.
	tls func(*tls.Config)
	// appURL, when set, rewrites the URL the services' pool connects to (a proxy).
	appURL func(string) string
	// options, when set, adds to the server's options (metrics, traces).
	options func(app *pgxpool.Pool, o *server.Options)
	// pool adds to the services' pool's options (a tracer).
	pool []db.Option
}

// secEnv is the harness (its helpers work unchanged) wired exactly like newHarness, with
// the options above, the extra identities, and what the security tests need besides:
// the server itself (its service descriptors), the database URL (to connect as the
// application role or as the superuser) and the application role's pool.
type secEnv struct {
	*harness
	srv    *grpc.Server
	health *health.Server
	url    string
	app    *pgxpool.Pool
}

func newSecEnv(t *testing.T, o secOptions) *secEnv {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, pool)
	appURL := url
	if o.appURL != nil {
		appURL = o.appURL(url)
	}
	app := dbtest.OpenPool(t, appURL, db.AppRole, o.pool...)
	h := &harness{
		pool:    pool,
		clock:   dbtest.NewClock(t0),
		certDir: t.TempDir(),
		logs:    &syncBuffer{},
		tr:      &transcript{},
		conns:   map[string]*grpc.ClientConn{},
	}
	ca, err := pki.EnsureCA(h.certDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(h.certDir, "server", []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, ids := range []map[string]string{identities, secIdentities} {
		for name, uri := range ids {
			if err := ca.IssueClient(h.certDir, name, uri); err != nil {
				t.Fatal(err)
			}
			dbtest.RegisterCertificates(t, pool, h.certDir, name)
		}
	}
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	keys := dbtest.Keyring(t)
	led := ledger.NewStore()
	par := params.NewCache(app, 0)
	f := forms.New(forms.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Now: h.clock.Now, Log: log})
	p := payouts.New(payouts.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: f, Now: h.clock.Now, Log: log})
	tlsConf, err := pki.ServerTLSConfig(filepath.Join(h.certDir, pki.CACertFile),
		filepath.Join(h.certDir, "server.pem"), filepath.Join(h.certDir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if o.tls != nil {
		o.tls(tlsConf)
	}
	imm := immediate.New(immediate.Deps{Pool: app, Ledger: led, Keys: keys, Params: par, Forms: f, Now: h.clock.Now, Log: log})
	reg := registry.New(app, h.clock.Now)
	settle := settlement.New(app, led, h.clock.Now)
	so := server.Options{TLS: tlsConf, Log: log, Active: server.NewRegistry(app, 0).Active, Limits: o.limits}
	if o.options != nil {
		o.options(app, &so)
	}
	deskH := desk.New(f, p, imm)
	authorityH := authority.New(authority.Deps{Expirer: f, Pool: app, Registry: reg, Settlement: settle, Immediate: imm, Now: h.clock.Now})
	// The console's sign-in service is part of the API: its method is walked like the
	// others (no console listener is started).
	so.Local = &server.Local{}
	con, err := console.New(console.Deps{Local: so.Local, Desk: deskH, Authority: authorityH, Desks: p, BaseURL: "https://127.0.0.1:50443", Now: h.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, hs, err := server.New(so, server.Services{
		Store:     store.New(f),
		Desk:      deskH,
		Authority: authorityH,
		Agency:    agency.New(settle),
		Console:   con,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		h.mu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		srv.Stop()
	})
	t.Cleanup(func() { h.tr.checkNoSecrets(t, h.logs.String()) })
	return &secEnv{harness: h, srv: srv, health: hs, url: url, app: app}
}

// tableCounts returns the row count of every table of the public schema, in one query.
func (e *secEnv) tableCounts(t *testing.T) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]string, len(tables))
	for i, table := range tables {
		parts[i] = fmt.Sprintf("SELECT '%s'::text, count(*) FROM %s", table, pgx.Identifier{table}.Sanitize())
	}
	rows, err = e.pool.Query(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var table string
		var n int64
		if err := rows.Scan(&table, &n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("counted %d tables: the schema was not discovered", len(out))
	}
	return out
}

// countDiff describes the tables whose counts differ, "" when none does.
func countDiff(before, after map[string]int64) string {
	var diffs []string
	for table, n := range after {
		if before[table] != n {
			diffs = append(diffs, fmt.Sprintf("%s %d→%d", table, before[table], n))
		}
	}
	for table, n := range before {
		if _, ok := after[table]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %d→gone", table, n))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, ", ")
}

// superuser connects to the test's database as the superuser of the server
// (TEST_DATABASE_URL's user), who can switch triggers off: the attacker of the tamper
// tests. The connection is closed when the test ends.
func (e *secEnv) superuser(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = e.pool.Config().ConnConfig.Database
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect as the superuser: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var super bool
	if err := conn.QueryRow(context.Background(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Fatalf("TEST_DATABASE_URL's user is not a superuser: the tamper tests need one")
	}
	return conn
}

// pgError returns err's SQLSTATE and message ("" when err is not a PostgreSQL error).
func pgError(err error) (string, string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.Message
	}
	return "", ""
}

// Secrets of the seeded run: document numbers as typed at the counters, and a bank card
// number given as a payout's account.
const (
	secDocA = "E7395 1846"          // French passport, paid in cash at CKG-01
	secDocB = "hk-5820-47319"       // Hong Kong and Macao permit, paid to a bank card at TFU-01
	secDocC = "G5550-2211"          // passport, form voided
	secDocD = "P4711 0815"          // passport, immediate refund at JFB-RP
	secCard = "6222021234567890123" // the bank card of the TFU-01 payout
)

// seededRun drives the services through every path that handles a document number:
// issue, find, verify, a refused payout with the wrong document, cash and bank-card
// payouts, a void, an immediate refund; then seals the journal and the audit log.
func seededRun(t *testing.T, env *secEnv) {
	t.Helper()
	ctx := ctxTimeout(t)
	// 2025-07-08 10:00 in Shanghai: immediate refund is in force in SC-CQ since 07-01.
	env.clock.Set(time.Date(2025, 7, 8, 2, 0, 0, 0, time.UTC))
	env.tr.secret(secCard)

	docA := passport(env.tr.secret(secDocA))
	a := env.issue(t, storeJFB1, domainExample(secDocA, "INV-S-A"))
	if _, err := env.desk(t, customsCKG).FindForms(ctx, &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_Document{Document: passport("e73951846")}}); err != nil {
		t.Fatalf("FindForms: %v", err)
	}
	env.verifyAll(t, customsCKG, a, docA)
	if _, err := env.desk(t, cashier1).SettleRefund(ctx, settleReq(docA, "RCPT-S-A", a.GetNumber())); err != nil {
		t.Fatalf("SettleRefund A: %v", err)
	}

	docB := &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT, Number: env.tr.secret(secDocB), IssuingCountry: "CN"}
	reqB := domainExample(secDocB, "INV-S-B")
	reqB.Traveller.Document, reqB.Traveller.Nationality = docB, "HK"
	b := env.issue(t, storeJFB2, reqB)
	env.verifyAll(t, customsTFU, b, docB)
	_, err := env.desk(t, cashierTFU).SettleRefund(ctx, settleReq(docA, "RCPT-S-X", b.GetNumber()))
	checkStatus(t, err, want{codes.FailedPrecondition, "DOCUMENT_MISMATCH", []string{"presented_document"}})
	card := settleReq(docB, "RCPT-S-B", b.GetNumber())
	card.Method, card.AccountReference = deskv1.PaymentMethod_PAYMENT_METHOD_BANK_CARD, secCard
	if _, err := env.desk(t, cashierTFU).SettleRefund(ctx, card); err != nil {
		t.Fatalf("SettleRefund B: %v", err)
	}
	if _, err := env.desk(t, cashierTFU).FindForms(ctx, &deskv1.FindFormsRequest{Query: &deskv1.FindFormsRequest_Document{Document: docB}}); err != nil {
		t.Fatalf("FindForms B: %v", err)
	}

	c := env.issue(t, storeJFB1, domainExample(env.tr.secret(secDocC), "INV-S-C"))
	if _, err := env.store(t, storeJFB1).VoidForm(ctx, &storev1.VoidFormRequest{RequestId: uuid.NewString(), FormNumber: c.GetNumber(), Reason: "goods returned"}); err != nil {
		t.Fatalf("VoidForm: %v", err)
	}

	docD := passport(env.tr.secret(secDocD))
	d := env.issue(t, storeJFB1, domainExample(secDocD, "INV-S-D"))
	if _, err := env.desk(t, refundPt).PayImmediateRefund(ctx, &deskv1.PayImmediateRefundRequest{
		RequestId: uuid.NewString(), FormNumber: d.GetNumber(), PresentedDocument: docD, AgreementReference: "AGR-S-D",
		PreAuthorization: &deskv1.PreAuthorization{AcquirerToken: "tok_5f2c9a7e81d04b", CardLast4: "0123", CardExpiry: "2027-12", AuthorizedAmount: "120.00"},
		DeparturePort:    "TFU",
	}); err != nil {
		t.Fatalf("PayImmediateRefund: %v", err)
	}
	if _, err := (&seal.Sealer{Pool: env.app, Log: slog.New(slog.DiscardHandler)}).SealOnce(ctx); err != nil {
		t.Fatalf("SealOnce: %v", err)
	}
}

// secretSpellings returns what a clear number could be stored as, upper-cased: as typed,
// normalized, normalized without its first character (more than the 4 a mask shows),
// and the normalized number in hex.
func secretSpellings(typed string) []string {
	norm := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(typed))
	return []string{strings.ToUpper(typed), norm, norm[1:], strings.ToUpper(fmt.Sprintf("%x", norm))}
}

// scanForSecrets looks for each secret (upper case) in every text, character, bytea,
// json, jsonb and array column of every table of the public schema, discovered from
// information_schema, case-insensitively (bytea through its escape encoding, where
// printable bytes stay as they are). It returns "table.column: secret" per hit and the
// number of columns scanned.
func scanForSecrets(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, secrets []string) ([]string, int) {
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
	for _, c := range cols {
		expr := pgx.Identifier{c.name}.Sanitize() + "::text"
		if c.typ == "bytea" {
			expr = "encode(" + pgx.Identifier{c.name}.Sanitize() + ", 'escape')"
		}
		sql := fmt.Sprintf(`SELECT s FROM unnest($1::text[]) AS s
			WHERE EXISTS (SELECT 1 FROM %s WHERE strpos(upper(%s), s) > 0) ORDER BY s`, pgx.Identifier{c.table}.Sanitize(), expr)
		rows, err := q.Query(ctx, sql, secrets)
		if err != nil {
			t.Fatalf("scan %s.%s: %v", c.table, c.name, err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("scan %s.%s: %v", c.table, c.name, err)
		}
		for _, s := range found {
			hits = append(hits, c.table+"."+c.name+": "+s)
		}
	}
	return hits, len(cols)
}

// TestNoClearDocumentNumberStored drives a seeded run through the services and then scans
// every text, bytea, json and array column of every table for the document numbers (as
// typed, normalized, all but the first character, in hex) and the bank card number: none
// is stored in clear. The broken control puts a number into a new table (text, bytea,
// jsonb) and into an existing one, and the same scan finds exactly those.
func TestNoClearDocumentNumberStored(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)

	var secrets []string
	for _, s := range []string{secDocA, secDocB, secDocC, secDocD, secCard} {
		secrets = append(secrets, secretSpellings(s)...)
	}
	// The run stored what it should: otherwise an empty database would pass.
	var forms, payouts, prepayments int
	if err := env.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM forms), (SELECT count(*) FROM payouts), (SELECT count(*) FROM prepayments)`).
		Scan(&forms, &payouts, &prepayments); err != nil {
		t.Fatal(err)
	}
	if forms != 4 || payouts != 2 || prepayments != 1 {
		t.Fatalf("seeded run stored %d forms, %d payouts, %d prepayments; want 4, 2, 1", forms, payouts, prepayments)
	}
	hits, columns := scanForSecrets(t, env.pool, secrets)
	t.Logf("scanned %d columns for %d spellings of 5 secrets: %d hits", columns, len(secrets), len(hits))
	for _, h := range hits {
		t.Errorf("clear secret stored: %s", h)
	}

	t.Run("broken control: a stored number is found", func(t *testing.T) {
		norm := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(secDocB))
		if _, err := env.pool.Exec(ctx, `CREATE TABLE leak_probe (note text, blob bytea, doc jsonb)`); err != nil {
			t.Fatal(err)
		}
		if _, err := env.pool.Exec(ctx, `INSERT INTO leak_probe VALUES ($1, $2, jsonb_build_object('document', $3::text))`,
			"traveller "+norm, []byte("\x00\x01"+strings.ToLower(norm)+"\xff"), secDocA); err != nil {
			t.Fatal(err)
		}
		if _, err := env.pool.Exec(ctx, `INSERT INTO audit_events (actor, action, object, detail) VALUES ('test', 'LEAK', 'x', jsonb_build_object('n', $1::text))`,
			strings.ToUpper(secDocD)); err != nil {
			t.Fatal(err)
		}
		hits, _ := scanForSecrets(t, env.pool, secrets)
		want := []string{
			"audit_events.detail: " + strings.ToUpper(secDocD),
			"leak_probe.blob: " + norm, "leak_probe.blob: " + norm[1:],
			"leak_probe.doc: " + strings.ToUpper(secDocA),
			"leak_probe.note: " + norm, "leak_probe.note: " + norm[1:],
		}
		slices.Sort(hits)
		slices.Sort(want)
		if !slices.Equal(hits, want) {
			t.Errorf("the scan found %q, want exactly %q", hits, want)
		}
	})
}

// appendOnly are the tables no one may change after insert, with a column to "update".
var appendOnly = []struct{ table, column string }{
	{"journal_txns", "kind"}, {"journal_entries", "amount"}, {"pending_transfers", "amount"},
	{"pending_resolutions", "outcome"}, {"audit_events", "action"}, {"payouts", "cashier"},
	{"payout_forms", "fee"}, {"seals", "hash"},
}

// tryInTx runs sql in a transaction that is always rolled back, and returns its error.
func tryInTx(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// TestAppRoleCannotRewriteHistory: after a seeded run, the application role (what the
// service runs as) is refused UPDATE, DELETE and TRUNCATE of every append-only table, and
// any direct write of account_balances, with 42501 "permission denied"; the owner is
// refused UPDATE and DELETE by the append-only triggers (and TRUNCATE where a table has
// its statement trigger). Nothing changed. TestPrivilegeLayersBrokenControl shows both
// layers are needed for these assertions to hold.
func TestAppRoleCannotRewriteHistory(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)
	before := env.tableCounts(t)
	var role string
	if err := env.app.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil || role != db.AppRole {
		t.Fatalf("the service pool runs as %q (%v), want %s", role, err, db.AppRole)
	}

	for _, x := range appendOnly {
		if before[x.table] == 0 {
			t.Fatalf("%s is empty after the seeded run: a row trigger could not be shown to fire", x.table)
		}
		tbl, col := pgx.Identifier{x.table}.Sanitize(), pgx.Identifier{x.column}.Sanitize()
		for _, sql := range []string{
			fmt.Sprintf("UPDATE %s SET %s = %s", tbl, col, col),
			fmt.Sprintf("DELETE FROM %s", tbl),
			fmt.Sprintf("TRUNCATE %s CASCADE", tbl),
		} {
			n, err := tryInTx(ctx, env.app, sql)
			code, msg := pgError(err)
			if code != "42501" || msg != "permission denied for table "+x.table {
				t.Errorf("app role: %s → %d rows, %s %q; want 42501 permission denied for table %s", sql, n, code, msg, x.table)
			}
		}
		for _, sql := range []string{
			fmt.Sprintf("UPDATE %s SET %s = %s", tbl, col, col),
			fmt.Sprintf("DELETE FROM %s", tbl),
		} {
			n, err := tryInTx(ctx, env.pool, sql)
			code, msg := pgError(err)
			op := strings.Fields(sql)[0]
			if code != "42501" || msg != x.table+" is append-only: "+op+" refused" {
				t.Errorf("owner: %s → %d rows, %s %q; want 42501 %s is append-only", sql, n, code, msg, x.table)
			}
		}
	}
	for _, table := range []string{"journal_txns", "journal_entries", "pending_transfers", "pending_resolutions", "audit_events", "seals"} {
		_, err := tryInTx(ctx, env.pool, "TRUNCATE "+table+" CASCADE")
		if code, msg := pgError(err); code != "42501" || !strings.Contains(msg, "is append-only: TRUNCATE refused") {
			t.Errorf("owner: TRUNCATE %s → %s %q; want 42501 append-only", table, code, msg)
		}
	}
	for _, sql := range []string{
		`INSERT INTO account_balances (account_id, shard, posted_dr) SELECT id, 15, 1000000 FROM accounts LIMIT 1`,
		`UPDATE account_balances SET posted_dr = posted_dr + 1`,
		`DELETE FROM account_balances`,
	} {
		_, err := tryInTx(ctx, env.app, sql)
		if code, msg := pgError(err); code != "42501" || msg != "permission denied for table account_balances" {
			t.Errorf("app role: %s → %s %q; want 42501 permission denied for table account_balances", sql, code, msg)
		}
	}
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("refused statements changed row counts: %s", d)
	}
}

// truncatable tries TRUNCATE ... CASCADE of each table in tx (each under a savepoint,
// rolled back) and returns those that the owner could empty.
func truncatable(t *testing.T, ctx context.Context, tx pgx.Tx, tables []string) []string {
	t.Helper()
	var out []string
	for _, table := range tables {
		if _, err := tx.Exec(ctx, `SAVEPOINT probe`); err != nil {
			t.Fatal(err)
		}
		_, err := tx.Exec(ctx, "TRUNCATE "+pgx.Identifier{table}.Sanitize()+" CASCADE")
		code, msg := pgError(err)
		switch {
		case err == nil:
			out = append(out, table)
		case code != "42501" || !strings.Contains(msg, "append-only"):
			t.Errorf("TRUNCATE %s: %v", table, err)
		}
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT probe`); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestAppendOnlyTablesRefuseTruncateToOwner: every table with the append-only row
// trigger also refuses TRUNCATE to its owner, so no one empties it in one statement that
// no row trigger sees. Broken control: with payout_forms' statement trigger dropped (in a
// rolled-back transaction) the same check names payout_forms. (Observed failing before
// migration 00007: payouts, payout_forms and closed_months could be truncated.)
func TestAppendOnlyTablesRefuseTruncateToOwner(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)
	rows, err := env.pool.Query(ctx, `SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		JOIN pg_proc p ON p.oid = g.tgfoid WHERE p.proname = 'refuse_change' AND NOT g.tgisinternal ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"audit_events", "journal_entries", "journal_txns", "payout_forms", "payouts", "pending_resolutions", "pending_transfers", "seals"} {
		if !slices.Contains(tables, want) {
			t.Fatalf("append-only tables %q lack %s", tables, want)
		}
	}
	tx, err := env.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if got := truncatable(t, ctx, tx, tables); len(got) > 0 {
		t.Errorf("the owner can TRUNCATE append-only tables (rolled back here): %q", got)
	}
	// payout_forms, because TRUNCATE payouts CASCADE also reaches payout_forms, which
	// refuses on its own.
	if _, err := tx.Exec(ctx, `DROP TRIGGER payout_forms_no_truncate ON payout_forms`); err != nil {
		t.Fatalf("broken control: %v", err)
	}
	if got := truncatable(t, ctx, tx, tables); !slices.Equal(got, []string{"payout_forms"}) {
		t.Errorf("broken control: with payout_forms_no_truncate dropped the check finds %q, want [payout_forms]", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := env.tableCounts(t)["payout_forms"]; n != 2 {
		t.Errorf("payout_forms has %d rows after the rolled-back probes, want 2", n)
	}
}

// TestPrivilegeLayersBrokenControl is the broken control of TestAppRoleCannotRewriteHistory:
// the same UPDATE of a journal amount as the application role, with each layer present
// or removed in a rolled-back transaction. Only with the grant given AND the trigger
// disabled does it succeed, so the assertions above detect the absence of both layers,
// and each layer alone holds.
func TestPrivilegeLayersBrokenControl(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)
	var id int64
	if err := env.pool.QueryRow(ctx, `SELECT min(id) FROM journal_entries`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		grant, disable bool
		wantMsg        string // "" means success
	}{
		{false, false, "permission denied for table journal_entries"},
		{true, false, "journal_entries is append-only: UPDATE refused"},
		{false, true, "permission denied for table journal_entries"},
		{true, true, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("grant=%v trigger-disabled=%v", c.grant, c.disable), func(t *testing.T) {
			tx, err := env.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if c.grant {
				if _, err := tx.Exec(ctx, `GRANT UPDATE ON journal_entries TO `+db.AppRole); err != nil {
					t.Fatal(err)
				}
			}
			if c.disable {
				if _, err := tx.Exec(ctx, `ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only`); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+db.AppRole); err != nil {
				t.Fatal(err)
			}
			tag, err := tx.Exec(ctx, `UPDATE journal_entries SET amount = amount + 1 WHERE id = $1`, id)
			_, msg := pgError(err)
			switch {
			case c.wantMsg == "" && (err != nil || tag.RowsAffected() != 1):
				t.Errorf("with both layers removed the update → %d rows, %v; want 1 row", tag.RowsAffected(), err)
			case c.wantMsg != "" && msg != c.wantMsg:
				t.Errorf("update → %d rows, %q; want %q", tag.RowsAffected(), msg, c.wantMsg)
			}
		})
	}
	var amount string
	if err := env.pool.QueryRow(ctx, `SELECT amount::text FROM journal_entries WHERE id = $1`, id).Scan(&amount); err != nil {
		t.Fatal(err)
	}
	if r, err := seal.Verify(ctx, env.pool, seal.Journal); err != nil || r.Broken != nil {
		t.Errorf("after the rolled-back controls the journal verifies %v (%v), want intact", r.Broken, err)
	}
}

// leaveRole runs RESET ROLE in a rolled-back transaction on conn and reports the user the
// session then acts as, and whether that user could switch the journal's append-only
// trigger off.
func leaveRole(t *testing.T, ctx context.Context, conn *pgx.Conn) (user string, disabled bool) {
	t.Helper()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `RESET ROLE`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only`)
	return user, err == nil
}

// TestServiceSessionCannotLeaveAppRole: a statement run through the service's database
// session (an injection, a bug) cannot get the owner's rights back: after RESET ROLE the
// session is still the application role and cannot switch the append-only trigger off.
// Broken control: a session that logs in as the owner and SETs ROLE to the application
// role (how db.OpenAs connected before it logged in as the role) leaves it with RESET
// ROLE and could disable the trigger, and the same check says so. (Observed failing
// before: the service's pool was such a session.)
func TestServiceSessionCannotLeaveAppRole(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	c, err := env.app.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Hijack() // never returned to the pool
	defer func() { _ = conn.Close(ctx) }()
	var before string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&before); err != nil || before != db.AppRole {
		t.Fatalf("the service session acts as %q (%v), want %s", before, err, db.AppRole)
	}
	if user, disabled := leaveRole(t, ctx, conn); user != db.AppRole || disabled {
		t.Errorf("after RESET ROLE the service session is %s (can disable the append-only trigger: %v), want %s and no",
			user, disabled, db.AppRole)
	}

	t.Run("broken control: SET ROLE on the owner's login", func(t *testing.T) {
		owner, err := pgx.Connect(ctx, env.url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = owner.Close(ctx) }()
		if _, err := owner.Exec(ctx, `SET ROLE `+db.AppRole); err != nil {
			t.Fatal(err)
		}
		if user, disabled := leaveRole(t, ctx, owner); user == db.AppRole || !disabled {
			t.Errorf("a SET ROLE session after RESET ROLE is %s (can disable: %v): the check cannot tell", user, disabled)
		}
	})
}

// TestTamperedJournalNamedByVerifyChains: after activity is sealed, a superuser who
// switches triggers off (session_replication_role = replica) changes one journal amount:
// AuthorityService.VerifyChains over gRPC names exactly that transaction's seal as the
// first broken link, with every seal before it verified, and the audit chain intact.
// Putting the amount back makes the chain verify again; the same for one audit event's
// detail. The broken control is the clean verification before each change.
func TestTamperedJournalNamedByVerifyChains(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	seededRun(t, env)
	ctx := ctxTimeout(t)
	auth := env.authority(t, sat)
	chains := func() map[string]*authorityv1.ChainVerification {
		t.Helper()
		resp, err := auth.VerifyChains(ctx, &authorityv1.VerifyChainsRequest{})
		if err != nil {
			t.Fatalf("VerifyChains: %v", err)
		}
		out := map[string]*authorityv1.ChainVerification{}
		for _, c := range resp.GetChains() {
			out[c.GetChain()] = c
		}
		if len(out) != 2 {
			t.Fatalf("VerifyChains reports chains %v, want journal and audit", out)
		}
		return out
	}
	var txns, events int64
	if err := env.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM journal_txns), (SELECT count(*) FROM audit_events)`).Scan(&txns, &events); err != nil {
		t.Fatal(err)
	}
	clean := chains()
	if !clean["journal"].GetOk() || clean["journal"].GetVerified() != txns || !clean["audit"].GetOk() || clean["audit"].GetVerified() != events {
		t.Fatalf("before tampering: %v; want both ok with %d journal and %d audit seals", clean, txns, events)
	}

	su := env.superuser(t)
	if _, err := su.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	// The target: the cash payout's transaction, in the middle of the chain.
	var txn string
	var seq, entry int64
	if err := env.pool.QueryRow(ctx, `SELECT s.row_id, s.seq, (SELECT min(e.id) FROM journal_entries e WHERE e.txn_id::text = s.row_id)
		FROM payouts p JOIN seals s ON s.chain = 'journal' AND s.row_id = p.txn_id::text WHERE p.desk_code = 'CKG-01'`).Scan(&txn, &seq, &entry); err != nil {
		t.Fatal(err)
	}
	if seq <= 1 || seq >= txns {
		t.Fatalf("target seal %d is not inside the chain of %d", seq, txns)
	}
	if tag, err := su.Exec(ctx, `UPDATE journal_entries SET amount = amount + 0.01 WHERE id = $1`, entry); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("tamper: %v (%d rows)", err, tag.RowsAffected())
	}
	got := chains()
	j := got["journal"]
	if j.GetOk() || j.GetBrokenRow() != txn || j.GetBrokenSeq() != seq || j.GetVerified() != seq-1 ||
		j.GetBrokenReason() != "the row's content no longer matches its seal" {
		t.Errorf("journal after changing an amount of txn %s (seal %d): %v; want broken at that seal, %d verified", txn, seq, j, seq-1)
	}
	if !got["audit"].GetOk() {
		t.Errorf("audit chain broken by a journal change: %v", got["audit"])
	}
	direct, err := seal.Verify(ctx, env.pool, seal.Journal)
	if err != nil || direct.Broken == nil || direct.Broken.RowID != txn || direct.Broken.Seq != seq {
		t.Errorf("seal.Verify: %+v (%v), want broken at seal %d row %s", direct.Broken, err, seq, txn)
	}
	if _, err := su.Exec(ctx, `UPDATE journal_entries SET amount = amount - 0.01 WHERE id = $1`, entry); err != nil {
		t.Fatal(err)
	}
	if j := chains()["journal"]; !j.GetOk() || j.GetVerified() != txns {
		t.Errorf("journal with the amount put back: %v; want ok, %d verified", j, txns)
	}

	var event string
	var eseq int64
	if err := env.pool.QueryRow(ctx, `SELECT s.row_id, s.seq FROM audit_events a JOIN seals s ON s.chain = 'audit' AND s.row_id = a.id::text
		WHERE a.action = 'EXPORT_CONFIRMED' ORDER BY s.seq LIMIT 1`).Scan(&event, &eseq); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, `UPDATE audit_events SET detail = detail || '{"port": "PEK"}' WHERE id = $1::bigint`, event); err != nil {
		t.Fatal(err)
	}
	got = chains()
	if a := got["audit"]; a.GetOk() || a.GetBrokenRow() != event || a.GetBrokenSeq() != eseq || a.GetVerified() != eseq-1 {
		t.Errorf("audit after changing event %s (seal %d): %v; want broken at that seal", event, eseq, a)
	}
	if !got["journal"].GetOk() {
		t.Errorf("journal broken by an audit change: %v", got["journal"])
	}
}

// TestMonthlyReportCarriesJournalHead: the monthly report commits to the journal's hash
// chain head as it is when the report is made (seal.Head), and a report made after more
// seals carries the new head.
func TestMonthlyReportCarriesJournalHead(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	sealer := &seal.Sealer{Pool: env.app, Log: slog.New(slog.DiscardHandler)}
	doc := passport(env.tr.secret("W2222-3333"))
	form := env.verifyAll(t, customsCKG, env.issue(t, storeJFB1, domainExample("W2222-3333", "INV-MR-1")), doc)
	if _, err := sealer.SealOnce(ctx); err != nil {
		t.Fatal(err)
	}
	report := func() *authorityv1.ChainHead {
		t.Helper()
		r, err := env.authority(t, sat).MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: "2025-06"})
		if err != nil {
			t.Fatalf("MonthlyReport: %v", err)
		}
		return r.GetJournalHead()
	}
	head := func() (int64, string) {
		seq, hash, err := seal.Head(ctx, env.pool, seal.Journal)
		if err != nil {
			t.Fatal(err)
		}
		return seq, hash
	}
	seq1, hash1 := head()
	if seq1 < 2 || len(hash1) != 64 {
		t.Fatalf("journal head %d %q after issue and verify", seq1, hash1)
	}
	if got := report(); got.GetSeq() != seq1 || got.GetHash() != hash1 {
		t.Errorf("report head %d %s, want %d %s", got.GetSeq(), got.GetHash(), seq1, hash1)
	}
	if _, err := env.desk(t, cashier1).SettleRefund(ctx, settleReq(doc, "RCPT-MR", form.GetNumber())); err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.SealOnce(ctx); err != nil {
		t.Fatal(err)
	}
	seq2, hash2 := head()
	if seq2 != seq1+1 || hash2 == hash1 {
		t.Fatalf("head after the payout %d %s, want %d and a new hash", seq2, hash2, seq1+1)
	}
	if got := report(); got.GetSeq() != seq2 || got.GetHash() != hash2 {
		t.Errorf("report head %d %s, want the new head %d %s", got.GetSeq(), got.GetHash(), seq2, hash2)
	}
}

// TestRateLimitPerCaller: with a burst of 5 and one more call per 10 s, a caller's sixth
// quick call is RESOURCE_EXHAUSTED and writes nothing, while another caller is still
// served.
func TestRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{limits: &server.Limits{Deadline: 30 * time.Second, Rate: 0.1, Burst: 5}})
	ctx := ctxTimeout(t)
	start := time.Now()
	var served, exhausted int
	for i := range 20 {
		_, err := env.store(t, storeJFB1).ListForms(ctx, &storev1.ListFormsRequest{})
		switch st := status.Convert(err); {
		case err == nil:
			served++
			if exhausted > 0 && i < 5 {
				t.Errorf("call %d served after a refusal", i)
			}
		case st.Code() == codes.ResourceExhausted:
			exhausted++
		default:
			t.Fatalf("call %d: %v", i, err)
		}
		if i < 5 && err != nil {
			t.Errorf("call %d within the burst: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	// At most the burst plus what refilled at 0.1/s while the calls ran.
	if limit := 5 + int(elapsed.Seconds()*0.1); served > limit || exhausted == 0 {
		t.Errorf("20 calls in %v: %d served, %d exhausted; want at most %d served", elapsed, served, exhausted, limit)
	}
	t.Logf("20 calls in %v: %d served, %d RESOURCE_EXHAUSTED", elapsed, served, exhausted)

	before := env.tableCounts(t)
	_, err := env.store(t, storeJFB1).IssueForm(ctx, domainExample(env.tr.secret("V1234-5678"), "INV-RL"))
	checkStatus(t, err, want{codes.ResourceExhausted, "", nil})
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("a rate-limited IssueForm wrote: %s", d)
	}
	// Another caller has its own bucket.
	if _, err := env.store(t, storeJFB2).IssueForm(ctx, domainExample("V1234-5678", "INV-RL")); err != nil {
		t.Errorf("S-JFB-2 while S-JFB-1 is limited: %v", err)
	}
}

// TestDefaultDeadlineBoundsCalls: the limiter gives each unary call the configured
// deadline when the client's is longer; a deadline already passed stops the call before
// it writes. The control: the same request under the default limits is issued.
func TestDefaultDeadlineBoundsCalls(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{limits: &server.Limits{Deadline: time.Nanosecond}})
	ctx := ctxTimeout(t)
	before := env.tableCounts(t)
	_, err := env.store(t, storeJFB1).IssueForm(ctx, domainExample(env.tr.secret("D1234-5678"), "INV-DL"))
	checkStatus(t, err, want{codes.DeadlineExceeded, "", nil})
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("a call past its deadline wrote: %s", d)
	}
	t.Run("control: the default deadline", func(t *testing.T) {
		ctl := newSecEnv(t, secOptions{})
		ctl.issue(t, storeJFB1, domainExample(ctl.tr.secret("D1234-5678"), "INV-DL"))
	})
}

// TestMaxConcurrentStreams: one connection gets at most 256 concurrent streams; the next
// call waits for a free stream (here until its 300 ms deadline) and goes through as soon
// as one stream ends. The control is that last call.
func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	health := healthpb.NewHealthClient(env.conn(t, storeJFB1))
	const open = 256
	cancels := make([]context.CancelFunc, open)
	for i := range open {
		sctx, scancel := context.WithCancel(ctx)
		cancels[i] = scancel
		stream, err := health.Watch(sctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	_, err := health.Check(short, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call 257 on a connection with 256 open streams: %v, want DEADLINE_EXCEEDED while waiting for a stream", err)
	}
	cancels[0]()
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("after one stream ended: %v", err)
	}
}

// violations returns the BadRequest field violations of err.
func violations(err error) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// violationDescription returns the description of err's violation of field.
func violationDescription(err error, field string) string {
	for _, v := range violations(err) {
		if v.GetField() == field {
			return v.GetDescription()
		}
	}
	return ""
}

// TestMessageAndFormLimits: a 17 MiB request is RESOURCE_EXHAUSTED before any handler
// runs (a 15 MiB one reaches validation, which names the field); 101 lines and 51
// invoices are INVALID_ARGUMENT naming lines and invoices, while 100 lines are issued.
func TestMessageAndFormLimits(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	env.tr.secret("B1234-5678")
	big := func(n int) *storev1.IssueFormRequest {
		r := domainExample("B1234-5678", "INV-BIG")
		r.Lines[0].Description = strings.Repeat("x", n)
		return r
	}
	before := env.tableCounts(t)
	_, err := env.store(t, storeJFB1).IssueForm(ctx, big(17<<20))
	st := checkStatus(t, err, want{codes.ResourceExhausted, "", nil})
	if !strings.Contains(st.Message(), "larger than max") {
		t.Errorf("17 MiB: %q", st.Message())
	}
	_, err = env.store(t, storeJFB1).IssueForm(ctx, big(15<<20))
	checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"lines[0].description"}})

	lines := func(n int) *storev1.IssueFormRequest {
		r := domainExample("B1234-5678", fmt.Sprintf("INV-L%d", n))
		r.Invoices = r.Invoices[:1]
		r.Lines = nil
		for range n {
			r.Lines = append(r.Lines, &storev1.LineInput{Description: "Tea cup", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
				VatRate: "0.13", Quantity: 1, Amount: "10.00", InvoiceNumber: r.Invoices[0].GetNumber()})
		}
		return r
	}
	_, err = env.store(t, storeJFB1).IssueForm(ctx, lines(101))
	checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"lines"}})
	if got := violationDescription(err, "lines"); got != "at most 100 lines per form" {
		t.Errorf("101 lines: %q", got)
	}
	invoices := lines(1)
	for i := range 50 {
		invoices.Invoices = append(invoices.Invoices, &formv1.Invoice{Number: fmt.Sprintf("INV-EXTRA-%d", i), Date: "2025-06-10"})
		invoices.Lines = append(invoices.Lines, &storev1.LineInput{Description: "Tea cup", Category: formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
			VatRate: "0.13", Quantity: 1, Amount: "10.00", InvoiceNumber: fmt.Sprintf("INV-EXTRA-%d", i)})
	}
	_, err = env.store(t, storeJFB1).IssueForm(ctx, invoices)
	checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"invoices"}})
	if got := violationDescription(err, "invoices"); got != "at most 50 invoices per form" {
		t.Errorf("51 invoices: %q", got)
	}
	if d := countDiff(before, env.tableCounts(t)); d != "" {
		t.Errorf("refused oversized requests wrote: %s", d)
	}
	// The control: 100 lines are a form.
	f := env.issue(t, storeJFB1, lines(100))
	if len(f.GetLines()) != 100 || f.GetEligibleAmount() != "1000.00" {
		t.Errorf("100 lines: %d lines, eligible %s; want 100, 1000.00", len(f.GetLines()), f.GetEligibleAmount())
	}
}

// echoes lists what in st repeats a raw value: a message over 1000 bytes, a description
// over 200 bytes, or a control or bidi character in either.
func echoes(st *status.Status) []string {
	var out []string
	bad := func(s string) bool { return strings.ContainsAny(s, "\u202e\u2066\u200f\x00\n\r") }
	if len(st.Message()) > 1000 || bad(st.Message()) {
		out = append(out, fmt.Sprintf("message of %d bytes: %.100q", len(st.Message()), st.Message()))
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if len(v.GetDescription()) > 200 || bad(v.GetDescription()) {
					out = append(out, fmt.Sprintf("%s: %.100q", v.GetField(), v.GetDescription()))
				}
			}
		}
	}
	return out
}

// TestRefusalsDoNotEchoUnvalidatedInput: a refusal describes the offending field without
// repeating its raw value when that value failed validation: an invalid invoice number
// that no line uses (with U+202E, with NUL and a newline, 1 MiB long) is refused naming
// the invoice, in a short message free of control and bidi characters; and the refusal
// of 20001 invoices is no longer than that of 201. Broken control: the same check on the
// refusal the service used to send ("no line is on invoice <raw number>") reports it.
// (Observed failing before the store handler stopped quoting the number and fault.List
// capped its violations: 1 MiB messages, 20001 violations.)
func TestRefusalsDoNotEchoUnvalidatedInput(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	env.tr.secret("C1234-5678")

	cases := []struct {
		name   string
		number string
		fields []string
	}{
		{"bidi override", "INV-\u202eFDP.exe", []string{"invoices[2].number", "invoices[2]"}},
		{"NUL and newline", "INV\x00\nforged: log line", []string{"invoices[2].number", "invoices[2]"}},
		// Refused by its size before any other check (wire.CheckLengths), which therefore
		// does not get to say that no line is on that invoice.
		{"1 MiB", strings.Repeat("A", 1<<20), []string{"invoices[2].number"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := domainExample("C1234-5678", "INV-ECHO")
			req.Invoices = append(req.Invoices, &formv1.Invoice{Number: c.number, Date: "2025-06-10"})
			_, err := env.store(t, storeJFB1).IssueForm(ctx, req)
			st := checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", c.fields})
			for _, e := range echoes(st) {
				t.Errorf("the refusal echoes the raw invoice number: %s", e)
			}
			// The broken control: the old description, quoting the number, is caught.
			old := &fault.Error{Kind: fault.Invalid, Reason: "INVALID_REQUEST", Message: "the request has invalid fields",
				Violations: []fault.Violation{{Field: "invoices[2]", Description: "no line is on invoice " + c.number}}}
			if len(echoes(server.Status(old))) == 0 {
				t.Errorf("broken control: the check misses a description quoting %.40q", c.number)
			}
		})
	}

	t.Run("20000 invoices", func(t *testing.T) {
		// The answer does not grow with the number of bad invoices: 20000 get the same
		// refusal as 200.
		refuse := func(n int) (int, int) {
			req := domainExample("C1234-5678", "INV-MANY")
			req.Invoices, req.Lines = req.Invoices[:1], req.Lines[:1]
			for i := range n {
				req.Invoices = append(req.Invoices, &formv1.Invoice{Number: fmt.Sprint(i)})
			}
			_, err := env.store(t, storeJFB1).IssueForm(ctx, req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || violationDescription(err, "invoices") != "at most 50 invoices per form" {
				t.Errorf("%d invoices: %v %.200q; want INVALID_ARGUMENT naming invoices", n+1, st.Code(), st.Message())
			}
			return len(violations(err)), len(st.Message())
		}
		n200, len200 := refuse(200)
		n20000, len20000 := refuse(20000)
		t.Logf("201 invoices: %d violations, %d bytes; 20001 invoices: %d violations, %d bytes", n200, len200, n20000, len20000)
		if n20000 > n200 || len20000 > len200+100 {
			t.Errorf("the refusal grows with the request: %d violations and %d bytes for 20001 invoices, %d and %d for 201",
				n20000, len20000, n200, len200)
		}
	})
}

// TestStreamErrorsAreMapped: a streaming call's errors get the same mapping as unary ones
// (domain errors → their code with details; anything else → INTERNAL with the generic
// message, never a database error's text). The control is the unary MonthlyReport,
// which reads the same data and maps the same failures; and with the table back the
// export streams. (Observed failing before the stream chain had errorStreamInterceptor:
// ExportReport's invalid request came back UNKNOWN without details, and a database
// failure UNKNOWN with the SQL error's text, relation name and SQLSTATE included.)
func TestStreamErrorsAreMapped(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	client := env.authority(t, sat)
	export := func(req *authorityv1.ExportReportRequest) error {
		stream, err := client.ExportReport(ctx, req)
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	t.Run("invalid request", func(t *testing.T) {
		_, err := client.MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: "June"})
		checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"month"}})
		err = export(&authorityv1.ExportReportRequest{Month: "June"})
		checkStatus(t, err, want{codes.InvalidArgument, "INVALID_REQUEST", []string{"month", "format"}})
	})
	t.Run("database failure", func(t *testing.T) {
		if _, err := env.pool.Exec(ctx, `ALTER TABLE forms RENAME TO forms_gone`); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := env.pool.Exec(ctx, `ALTER TABLE forms_gone RENAME TO forms`); err != nil {
				t.Fatal(err)
			}
		}()
		_, err := client.MonthlyReport(ctx, &authorityv1.MonthlyReportRequest{Month: "2025-06"})
		unary := checkStatus(t, err, want{codes.Internal, "", nil})
		err = export(&authorityv1.ExportReportRequest{Month: "2025-06", Format: authorityv1.ExportFormat_EXPORT_FORMAT_CSV})
		st := status.Convert(err)
		if st.Code() != codes.Internal || st.Message() != unary.Message() {
			t.Errorf("ExportReport with the database failing: %v %q; want INTERNAL %q like MonthlyReport", st.Code(), st.Message(), unary.Message())
		}
	})
	// The control: with the table back, the export streams a file.
	if err := export(&authorityv1.ExportReportRequest{Month: "2025-06", Format: authorityv1.ExportFormat_EXPORT_FORMAT_CSV}); err != nil {
		t.Errorf("ExportReport: %v", err)
	}
}
