package dbtest

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/identity"
	"taxrefund/internal/pki"
)

// RegisterCertificates registers in the identity register (internal/identity) the
// identities of the client certificates dir/<name>.pem and binds each certificate, as
// `taxrefund certs` does; store certificates, which the register does not hold, are
// skipped. pool must be the owner's.
func RegisterCertificates(t testing.TB, pool *pgxpool.Pool, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		cert, err := pki.ReadCertificate(pki.CertPath(dir, name))
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		RegisterCertificate(t, pool, cert)
	}
}

// RegisterCertificate registers one certificate's identity and binds the certificate (a
// store's certificate: nothing to do).
func RegisterCertificate(t testing.TB, pool *pgxpool.Pool, cert *x509.Certificate) {
	t.Helper()
	_, err := identity.New(pool, nil).Issue(context.Background(), "test fixture", cert)
	if err != nil && !errors.Is(err, identity.ErrStore) {
		t.Fatalf("register %v: %v", cert.URIs, err)
	}
}
