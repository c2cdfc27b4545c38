package identity_test

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/identity"
	"taxrefund/internal/pki"
)

type env struct {
	t    *testing.T
	ctx  context.Context
	url  string
	reg  *identity.Register
	app  identity.Querier
	ca   *pki.CA
	dir  string
	pool interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, pool)
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: context.Background(), url: url, reg: identity.New(pool, nil),
		app: dbtest.OpenPool(t, url, db.AppRole), ca: ca, dir: dir, pool: pool}
}

// cert issues (renew: always a new one) the certificate name for uri.
func (e *env) cert(name, uri string, renew bool) *x509.Certificate {
	e.t.Helper()
	issue := e.ca.IssueClient
	if renew {
		issue = e.ca.RenewClient
	}
	if err := issue(e.dir, name, uri); err != nil {
		e.t.Fatal(err)
	}
	c, err := pki.ReadCertificate(pki.CertPath(e.dir, name))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// check asks what the server asks, as the service's role.
func (e *env) check(c *x509.Certificate) error {
	e.t.Helper()
	p, err := auth.FromCertificate(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return identity.Check(e.ctx, e.app, p)
}

func (e *env) audit(object string) []string {
	e.t.Helper()
	var actions []string
	err := e.pool.QueryRow(e.ctx, `SELECT coalesce(array_agg(action ORDER BY id), '{}') FROM audit_events WHERE object = $1`, object).Scan(&actions)
	if err != nil {
		e.t.Fatal(err)
	}
	return actions
}

func wantRefused(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: %v, want %v", what, err, kind)
	}
}

// TestRegisterLifecycle walks one cashier through the register: unknown, issued,
// re-issued (no change), a second certificate not bound, suspended, reinstated, rotated
// (the old certificate refused, the new one served), revoked by person (every
// certificate refused, for good); each change is in the audit log.
func TestRegisterLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const uri = "taxrefund://desk/CKG-01/cashier-7"
	c1 := e.cert("c7", uri, false)
	wantRefused(t, "before registration", e.check(c1), auth.ErrUnregistered)

	got, err := e.reg.Issue(e.ctx, "test", c1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != identity.Cashier || got.Party != "CKG-01" || got.Person != "cashier-7" || got.Status != identity.Registered {
		t.Errorf("issued %+v", got)
	}
	if err := e.check(c1); err != nil {
		t.Errorf("registered: %v", err)
	}
	if _, err := e.reg.Issue(e.ctx, "test", c1); err != nil {
		t.Errorf("issue again: %v", err)
	}
	if a := e.audit(uri); !slices.Equal(a, []string{"IDENTITY_REGISTERED", "CERTIFICATE_BOUND"}) {
		t.Errorf("audit after issuing twice: %v", a)
	}

	// A second certificate of the same identity, signed by the CA but not registered.
	other := e.cert("c7-other", uri, true)
	wantRefused(t, "an unbound certificate of a registered identity", e.check(other), auth.ErrUnregistered)

	if _, err := e.reg.SetStatus(e.ctx, "test", uri, identity.Suspended, "leave"); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "suspended", e.check(c1), auth.ErrInactive)
	if _, err := e.reg.SetStatus(e.ctx, "test", uri, identity.Registered, "back"); err != nil {
		t.Fatal(err)
	}
	if err := e.check(c1); err != nil {
		t.Errorf("reinstated: %v", err)
	}

	c2 := e.cert("c7", uri, true)
	revoked, err := e.reg.Rotate(e.ctx, "test", c2, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(revoked, []string{c1.SerialNumber.Text(16)}) {
		t.Errorf("rotation revoked %v, want the old serial %s", revoked, c1.SerialNumber.Text(16))
	}
	wantRefused(t, "the rotated-out certificate", e.check(c1), auth.ErrInactive)
	if err := e.check(c2); err != nil {
		t.Errorf("the replacement: %v", err)
	}

	serials, err := e.reg.RevokeIdentity(e.ctx, "test", uri, "left the agency")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(serials, []string{c2.SerialNumber.Text(16)}) {
		t.Errorf("revoking the person revoked %v, want %s", serials, c2.SerialNumber.Text(16))
	}
	wantRefused(t, "revoked person", e.check(c2), auth.ErrInactive)
	c3 := e.cert("c7", uri, true)
	_, err = e.reg.Issue(e.ctx, "test", c3)
	wantRefused(t, "issuing to a revoked person", err, identity.ErrRevoked)
	_, err = e.reg.SetStatus(e.ctx, "test", uri, identity.Registered, "oops")
	wantRefused(t, "reinstating a revoked person", err, identity.ErrRevoked)
	wantRefused(t, "a new certificate of a revoked person", e.check(c3), auth.ErrInactive)

	ent, certs, err := e.reg.Get(e.ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if ent.Status != identity.Revoked || ent.Reason != "left the agency" || len(certs) != 2 || !certs[0].Revoked || !certs[1].Revoked {
		t.Errorf("register holds %+v, %+v", ent, certs)
	}
	want := []string{"IDENTITY_REGISTERED", "CERTIFICATE_BOUND", "IDENTITY_SUSPENDED", "IDENTITY_REGISTERED",
		"CERTIFICATE_BOUND", "CERTIFICATE_ROTATED", "IDENTITY_REVOKED"}
	if a := e.audit(uri); !slices.Equal(a, want) {
		t.Errorf("audit %v, want %v", a, want)
	}
}

// TestRevokeSerial: one certificate revoked by its serial as openssl prints it; the
// identity's other certificate keeps working.
func TestRevokeSerial(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const uri = "taxrefund://customs/CKG/officer-3"
	a, b := e.cert("a", uri, false), e.cert("b", uri, false)
	for _, c := range []*x509.Certificate{a, b} {
		if _, err := e.reg.Issue(e.ctx, "test", c); err != nil {
			t.Fatal(err)
		}
	}
	colons := ""
	for i, x := range a.SerialNumber.Bytes() {
		if i > 0 {
			colons += ":"
		}
		colons += string("0123456789ABCDEF"[x>>4]) + string("0123456789ABCDEF"[x&15])
	}
	got, err := e.reg.RevokeSerial(e.ctx, "test", colons, "laptop lost")
	if err != nil || got != uri {
		t.Fatalf("RevokeSerial(%s): %q, %v", colons, got, err)
	}
	wantRefused(t, "revoked certificate", e.check(a), auth.ErrInactive)
	if err := e.check(b); err != nil {
		t.Errorf("the officer's other certificate: %v", err)
	}
	if _, err := e.reg.RevokeSerial(e.ctx, "test", colons, "again"); err != nil {
		t.Errorf("revoking again: %v", err)
	}
	if a := e.audit(a.SerialNumber.Text(16)); !slices.Equal(a, []string{"CERTIFICATE_REVOKED"}) {
		t.Errorf("audit of the serial %v, want one CERTIFICATE_REVOKED", a)
	}
	if _, err := e.reg.RevokeSerial(e.ctx, "test", "xyz", ""); err == nil {
		t.Error("a serial that is not hex was accepted")
	}
}

// TestIssueRefusals: a store's certificate is not this register's; an identity at a port,
// desk or agency the registry does not have is refused and nothing is registered; kinds.
func TestIssueRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.reg.Issue(e.ctx, "test", e.cert("s", "taxrefund://store/S-JFB-1", false))
	wantRefused(t, "a store", err, identity.ErrStore)
	for _, uri := range []string{"taxrefund://desk/NOPE/cashier-1", "taxrefund://customs/XXX/officer-1", "taxrefund://agency/AG-NO/user-1"} {
		_, err := e.reg.Issue(e.ctx, "test", e.cert("x", uri, true))
		wantRefused(t, uri, err, identity.ErrNoParty)
		if _, _, err := e.reg.Get(e.ctx, uri); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("%s registered anyway: %v", uri, err)
		}
	}
	for uri, kind := range map[string]identity.Kind{
		"taxrefund://authority/sat":             identity.Official,
		"taxrefund://desk/JFB-RP":               identity.RefundPoint,
		"taxrefund://agency/AG-CQ/backoffice-1": identity.AgencyUser,
		"taxrefund://customs/TFU/officer-9":     identity.CustomsOfficer,
	} {
		got, err := e.reg.Issue(e.ctx, "test", e.cert("k", uri, true))
		if err != nil || got.Kind != kind {
			t.Errorf("%s: %+v, %v; want kind %s", uri, got, err, kind)
		}
	}
}

// TestServiceRoleCannotReadTheRegister: the service's roles may ask about one certificate
// and nothing else: they cannot list, change or add identities or bindings.
func TestServiceRoleCannotReadTheRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.reg.Issue(e.ctx, "test", e.cert("o", "taxrefund://authority/sat", false)); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{db.AppRole, "taxrefund_store", "taxrefund_desk", "taxrefund_authority", "taxrefund_jobs"} {
		e.refusedAs(role)
	}
}

// refusedAs checks that role can neither read nor change the register's tables.
func (e *env) refusedAs(role string) {
	t := e.t
	t.Helper()
	app := dbtest.OpenPool(t, e.url, role)
	for _, sql := range []string{
		`SELECT count(*) FROM identities`,
		`SELECT count(*) FROM identity_certificates`,
		`UPDATE identities SET status = 'REGISTERED'`,
		`INSERT INTO identities (uri, kind, party, person, status, effective_at, changed_by) VALUES ('taxrefund://authority/x', 'OFFICIAL', 'x', '', 'REGISTERED', now(), 'x')`,
		`DELETE FROM identity_certificates`,
	} {
		var pgErr *pgconn.PgError
		if _, err := app.Exec(e.ctx, sql); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as %s: %v, want permission denied", sql, role, err)
		}
	}
}
