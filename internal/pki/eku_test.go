package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"taxrefund/internal/pki"
)

// TestServerRefusesCertificateWithoutClientAuth: the server's TLS configuration refuses
// a client certificate that does not list clientAuth: none at all (which crypto/x509
// takes as any use), or serverAuth only. One that lists clientAuth passes.
func TestServerRefusesCertificateWithoutClientAuth(t *testing.T) {
	t.Parallel()
	leaf := func(usage ...x509.ExtKeyUsage) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: usage}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueServer(dir, "server", []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerTLSConfig(dir+"/"+pki.CACertFile, dir+"/server.pem", dir+"/server-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VerifyConnection == nil {
		t.Fatal("the server configuration does not check the client certificate's extended key usage")
	}
	for name, c := range map[string]*x509.Certificate{"no extended key usage": leaf(), "serverAuth only": leaf(x509.ExtKeyUsageServerAuth)} {
		if err := cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf(x509.ExtKeyUsageClientAuth)}}); err != nil {
		t.Errorf("clientAuth: %v", err)
	}
}
