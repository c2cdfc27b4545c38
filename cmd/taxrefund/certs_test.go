package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/identity"
	"taxrefund/internal/pki"
)

// TestCertsIdentityRegister drives `taxrefund certs issue|rotate|revoke|suspend|reinstate`
// as an operator would, and checks each step the way the server does (identity.Check as
// the service's role) and in the audit log: issue registers and writes the pair (again:
// no change); rotate writes a new pair and revokes the old certificate; revoke -serial
// stops one certificate and a new issue replaces it; suspend and reinstate; revoke -uri
// stops the person for good. Plain `taxrefund certs` registers the development
// identities and replaces a revoked certificate.
func TestCertsIdentityRegister(t *testing.T) {
	t.Parallel()
	url := dbtest.NewURL(t)
	owner := dbtest.OpenPool(t, url, "")
	dbtest.Registry(t, owner)
	app := dbtest.OpenPool(t, url, db.AppRole)
	ctx := context.Background()
	dir := t.TempDir()
	getenv := func(k string) string { return map[string]string{"USER": "alice"}[k] }
	certs := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"taxrefund", "certs"}, args...)
		args = append(args, "-database-url", url)
		if args[2] == "issue" || args[2] == "rotate" {
			args = append(args, "-cert-dir", dir)
		}
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := certs(args...)
		if err != nil {
			t.Fatalf("certs %v: %v", args, err)
		}
		return out
	}
	const uri = "taxrefund://desk/CKG-01/cashier-02"
	path := filepath.Join(dir, "desk-CKG-01-cashier-02.pem")
	read := func() *x509.Certificate {
		t.Helper()
		c, err := pki.ReadCertificate(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	check := func(c *x509.Certificate) error {
		t.Helper()
		p, err := auth.FromCertificate(c)
		if err != nil {
			t.Fatal(err)
		}
		return identity.Check(ctx, app, p)
	}
	serving := func(what string, c *x509.Certificate) {
		t.Helper()
		if err := check(c); err != nil {
			t.Errorf("%s: %v, want served", what, err)
		}
	}
	refused := func(what string, c *x509.Certificate, kind error) {
		t.Helper()
		if err := check(c); !errors.Is(err, kind) {
			t.Errorf("%s: %v, want %v", what, err, kind)
		}
	}

	out := must("issue", "-uri", uri)
	first := read()
	if !strings.Contains(out, "CASHIER of CKG-01, REGISTERED") || !strings.Contains(out, first.SerialNumber.Text(16)) {
		t.Errorf("issue printed %q", out)
	}
	serving("issued", first)
	must("issue", "-uri", uri)
	if again := read(); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Error("a second issue replaced a valid registered certificate")
	}

	out = must("rotate", "-uri", uri, "-reason", "yearly")
	second := read()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || !strings.Contains(out, "revoked "+first.SerialNumber.Text(16)) {
		t.Errorf("rotate printed %q; serial %s, was %s", out, second.SerialNumber.Text(16), first.SerialNumber.Text(16))
	}
	refused("the rotated-out certificate", first, auth.ErrInactive)
	serving("the replacement", second)

	must("revoke", "-serial", second.SerialNumber.Text(16), "-reason", "laptop stolen")
	refused("revoked by serial", second, auth.ErrInactive)
	must("issue", "-uri", uri) // the file's certificate is revoked: a new one
	third := read()
	if third.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("issue kept a revoked certificate")
	}
	serving("reissued after a revocation", third)

	must("suspend", "-uri", uri, "-reason", "under review")
	refused("suspended", third, auth.ErrInactive)
	must("reinstate", "-uri", uri)
	serving("reinstated", third)

	out = must("revoke", "-uri", uri, "-reason", "left the agency")
	if !strings.Contains(out, third.SerialNumber.Text(16)) {
		t.Errorf("revoke -uri printed %q", out)
	}
	refused("revoked person", third, auth.ErrInactive)
	if _, err := certs("issue", "-uri", uri); !errors.Is(err, identity.ErrRevoked) {
		t.Errorf("issue to a revoked person: %v, want ErrRevoked", err)
	}
	if _, err := certs("rotate", "-uri", "taxrefund://customs/CKG/officer-404", "-reason", "x"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("rotate of an identity never issued: %v, want ErrNotFound", err)
	}

	var actions []string
	if err := owner.QueryRow(ctx, `SELECT array_agg(action ORDER BY id) FROM audit_events WHERE actor = 'certs:alice'`).Scan(&actions); err != nil {
		t.Fatal(err)
	}
	want := []string{"IDENTITY_REGISTERED", "CERTIFICATE_BOUND", "CERTIFICATE_BOUND", "CERTIFICATE_ROTATED", "CERTIFICATE_REVOKED",
		"CERTIFICATE_BOUND", "IDENTITY_SUSPENDED", "IDENTITY_REGISTERED", "IDENTITY_REVOKED"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit log of certs:alice %v, want %v", actions, want)
	}

	for _, bad := range [][]string{
		{"revoke", "-reason", "x"},
		{"revoke", "-serial", "ab", "-uri", uri, "-reason", "x"},
		{"revoke", "-serial", "ab"},
		{"suspend", "-uri", uri},
		{"issue"},
		{"issue", "-uri", "taxrefund://store/S-JFB-1"},
	} {
		if _, err := certs(bad...); err == nil {
			t.Errorf("certs %v: no error", bad)
		}
	}

	t.Run("development set", func(t *testing.T) {
		devDir := t.TempDir()
		plain := func() {
			t.Helper()
			var out bytes.Buffer
			if err := run(ctx, []string{"taxrefund", "certs", "-database-url", url, "-cert-dir", devDir,
				"-pii-keys", filepath.Join(devDir, "pii.keys")}, getenv, &out, &out); err != nil {
				t.Fatalf("certs: %v\n%s", err, out.String())
			}
		}
		plain()
		readDev := func(name string) *x509.Certificate {
			t.Helper()
			c, err := pki.ReadCertificate(pki.CertPath(devDir, name))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		for _, name := range []string{"authority", "desk-CKG-01", "desk-JFB-RP", "customs-TFU", "agency-AG-CD"} {
			serving(name, readDev(name))
		}
		desk := readDev("desk-CKG-01")
		if _, err := identity.New(owner, nil).RevokeSerial(ctx, "test", desk.SerialNumber.Text(16), "test"); err != nil {
			t.Fatal(err)
		}
		plain()
		renewed := readDev("desk-CKG-01")
		if renewed.SerialNumber.Cmp(desk.SerialNumber) == 0 {
			t.Fatal("certs kept a revoked certificate")
		}
		refused("the revoked development certificate", desk, auth.ErrInactive)
		serving("its replacement", renewed)
	})
}
