package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatalf("EnsureCA(%s): %v", dir, err)
	}
	return ca
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := readCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureCACreatesThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := mustCA(t, dir)

	if got := mode(t, dir); got != 0o700 {
		t.Errorf("CA directory mode = %o, want 700", got)
	}
	if got := mode(t, filepath.Join(dir, CAKeyFile)); got != 0o600 {
		t.Errorf("CA key mode = %o, want 600", got)
	}
	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("CA KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if life := c.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour || life > 10*366*24*time.Hour {
		t.Errorf("CA validity left = %v, want about 10 years", life)
	}

	certBefore := mustRead(t, filepath.Join(dir, CACertFile))
	keyBefore := mustRead(t, filepath.Join(dir, CAKeyFile))
	again := mustCA(t, dir)
	if !again.Certificate().Equal(c) {
		t.Error("second EnsureCA returned a different CA certificate")
	}
	if !bytes.Equal(certBefore, mustRead(t, filepath.Join(dir, CACertFile))) ||
		!bytes.Equal(keyBefore, mustRead(t, filepath.Join(dir, CAKeyFile))) {
		t.Error("second EnsureCA rewrote the CA files")
	}
}

func TestEnsureCARefusesIncompleteOrMismatchedCA(t *testing.T) {
	t.Run("key missing", func(t *testing.T) {
		dir := t.TempDir()
		mustCA(t, dir)
		if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureCA(dir); err == nil {
			t.Fatal("EnsureCA with ca.pem but no ca-key.pem succeeded")
		}
		if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
			t.Fatal("EnsureCA created a new key beside an existing CA certificate")
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		mustCA(t, a)
		mustCA(t, b)
		if err := os.WriteFile(filepath.Join(a, CAKeyFile), mustRead(t, filepath.Join(b, CAKeyFile)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureCA(a); err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Fatalf("EnsureCA with a foreign key: err = %v, want key mismatch", err)
		}
	})
	t.Run("leaf certificate as CA", func(t *testing.T) {
		dir := t.TempDir()
		ca := mustCA(t, dir)
		if err := ca.IssueClient(dir, "leaf", "taxrefund://store/S1"); err != nil {
			t.Fatal(err)
		}
		caDir := t.TempDir()
		for from, to := range map[string]string{"leaf.pem": CACertFile, "leaf-key.pem": CAKeyFile} {
			if err := os.WriteFile(filepath.Join(caDir, to), mustRead(t, filepath.Join(dir, from)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := EnsureCA(caDir); err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Fatalf("EnsureCA with a leaf certificate: err = %v, want not a CA", err)
		}
	})
}

func TestIssueClient(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	const uri = "taxrefund://customs/CKG/officer-7"
	if err := ca.IssueClient(dir, "officer", uri); err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, filepath.Join(dir, "officer.pem"))

	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify for client auth: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verifies for server auth")
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != uri {
		t.Errorf("URIs = %v, want exactly [%s]", c.URIs, uri)
	}
	if c.Subject.CommonName != uri {
		t.Errorf("CommonName = %q, want %q", c.Subject.CommonName, uri)
	}
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
		t.Errorf("client certificate has extra SANs: %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses)
	}
	if c.IsCA {
		t.Error("client certificate is a CA")
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 365*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("client validity = %v, want one year", life)
	}
	if got := mode(t, filepath.Join(dir, "officer-key.pem")); got != 0o600 {
		t.Errorf("client key mode = %o, want 600", got)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "officer.pem"), filepath.Join(dir, "officer-key.pem")); err != nil {
		t.Errorf("certificate and key do not form a pair: %v", err)
	}
}

func TestIssueClientIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certPath, keyPath := filepath.Join(dir, "s1.pem"), filepath.Join(dir, "s1-key.pem")
	if err := ca.IssueClient(dir, "s1", "taxrefund://store/S1"); err != nil {
		t.Fatal(err)
	}
	cert1, key1 := mustRead(t, certPath), mustRead(t, keyPath)

	if err := ca.IssueClient(dir, "s1", "taxrefund://store/S1"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert1, mustRead(t, certPath)) || !bytes.Equal(key1, mustRead(t, keyPath)) {
		t.Fatal("second IssueClient with the same URI rewrote the files")
	}

	// A different URI replaces the certificate.
	if err := ca.IssueClient(dir, "s1", "taxrefund://store/S2"); err != nil {
		t.Fatal(err)
	}
	if c := mustCert(t, certPath); len(c.URIs) != 1 || c.URIs[0].String() != "taxrefund://store/S2" {
		t.Fatalf("after a URI change, URIs = %v, want [taxrefund://store/S2]", c.URIs)
	}

	// A certificate from another CA is replaced by one from this CA.
	other := mustCA(t, t.TempDir())
	if err := other.IssueClient(dir, "s1", "taxrefund://store/S2"); err != nil {
		t.Fatal(err)
	}
	if _, err := mustCert(t, certPath).Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("IssueClient kept a certificate of the wrong CA: %v", err)
	}

	// A key that does not match the certificate forces a new pair.
	if err := ca.IssueClient(dir, "s3", "taxrefund://store/S3"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s3-key.pem"), mustRead(t, keyPath), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClient(dir, "s3", "taxrefund://store/S3"); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "s3.pem"), filepath.Join(dir, "s3-key.pem")); err != nil {
		t.Fatalf("after a key mismatch the pair is still broken: %v", err)
	}
}

// TestRenewClientWritesANewPair: a rotation always gets a new key and a new serial for the
// same identity, and the files form a pair; ReadCertificate reads it back.
func TestRenewClientWritesANewPair(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	const uri = "taxrefund://desk/D1/cashier-2"
	if err := ca.IssueClient(dir, "c", uri); err != nil {
		t.Fatal(err)
	}
	old := mustCert(t, CertPath(dir, "c"))
	if err := ca.RenewClient(dir, "c", uri); err != nil {
		t.Fatal(err)
	}
	renewed, err := ReadCertificate(CertPath(dir, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || bytes.Equal(renewed.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) {
		t.Error("RenewClient kept the serial or the key")
	}
	if len(renewed.URIs) != 1 || renewed.URIs[0].String() != uri || !slices.Contains(renewed.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("renewed certificate: URIs %v, EKU %v", renewed.URIs, renewed.ExtKeyUsage)
	}
	if _, err := tls.LoadX509KeyPair(CertPath(dir, "c"), filepath.Join(dir, "c-key.pem")); err != nil {
		t.Errorf("renewed certificate and key do not form a pair: %v", err)
	}
}

func TestIssueClientRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	cases := []struct{ name, file, uri string }{
		{"relative URI", "a", "store/S1"},
		{"opaque URI", "a", "taxrefund:store/S1"},
		{"non-canonical URI", "a", "TAXREFUND://store/S1"},
		{"path in name", "../a", "taxrefund://store/S1"},
		{"separator in name", "a/b", "taxrefund://store/S1"},
		{"hidden name", ".a", "taxrefund://store/S1"},
		{"empty name", "", "taxrefund://store/S1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := ca.IssueClient(dir, tc.file, tc.uri); err == nil {
				t.Fatalf("IssueClient(%q, %q) succeeded", tc.file, tc.uri)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "a.pem")); err == nil {
		t.Fatal("IssueClient wrote outside its directory")
	}
}

func TestIssueServer(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	if err := ca.IssueServer(dir, "server", []string{"localhost", "127.0.0.1", "::1"}); err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, filepath.Join(dir, "server.pem"))
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "example.com"}); err == nil {
		t.Error("server certificate verifies for a host it was not issued for")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies as a client certificate")
	}
	if !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || len(c.IPAddresses) != 2 || len(c.DNSNames) != 1 {
		t.Errorf("SANs: DNS %v IP %v", c.DNSNames, c.IPAddresses)
	}

	before := mustRead(t, filepath.Join(dir, "server.pem"))
	if err := ca.IssueServer(dir, "server", []string{"::1", "localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(dir, "server.pem"))) {
		t.Error("IssueServer with the same hosts rewrote the certificate")
	}
	if err := ca.IssueServer(dir, "server", []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if c := mustCert(t, filepath.Join(dir, "server.pem")); len(c.IPAddresses) != 0 {
		t.Errorf("IssueServer with fewer hosts kept IP SANs %v", c.IPAddresses)
	}
	if err := ca.IssueServer(dir, "server", nil); err == nil {
		t.Error("IssueServer without hosts succeeded")
	}
}

// TestTLSConfigsHandshake runs a real TLS handshake between the two configs.
func TestTLSConfigsHandshake(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	if err := ca.IssueServer(dir, "server", []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueClient(dir, "desk", "taxrefund://desk/D1/cashier-2"); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	srvCfg, err := ServerTLSConfig(p(CACertFile), p("server.pem"), p("server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if srvCfg.ClientAuth != tls.RequireAndVerifyClientCert || srvCfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("server config: ClientAuth %v MinVersion %x", srvCfg.ClientAuth, srvCfg.MinVersion)
	}

	handshake := func(cliCfg *tls.Config) (tls.ConnectionState, error) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		srv := tls.Server(c1, srvCfg)
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake(); c1.Close() }()
		cli := tls.Client(c2, cliCfg)
		cliErr := cli.Handshake()
		if cliErr == nil {
			// In TLS 1.3 the server judges the client certificate after
			// the client has finished; reading surfaces its verdict.
			_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = cli.Read(make([]byte, 1))
		}
		srvErr := <-errc
		if srvErr != nil {
			return tls.ConnectionState{}, srvErr
		}
		return srv.ConnectionState(), cliErr
	}

	cliCfg, err := ClientTLSConfig(p(CACertFile), p("desk.pem"), p("desk-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	st, err := handshake(cliCfg)
	if err != nil {
		t.Fatalf("handshake with a valid client certificate: %v", err)
	}
	if len(st.VerifiedChains) == 0 || st.VerifiedChains[0][0].URIs[0].String() != "taxrefund://desk/D1/cashier-2" {
		t.Fatalf("server did not see the verified client identity: %+v", st.VerifiedChains)
	}

	// The server's own certificate is not accepted as a client certificate.
	asClient, err := ClientTLSConfig(p(CACertFile), p("server.pem"), p("server-key.pem"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(asClient); err == nil {
		t.Fatal("server accepted a server certificate as client certificate")
	}

	// Without a certificate the handshake fails.
	if _, err := handshake(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13}); err == nil {
		t.Fatal("server accepted a client without certificate")
	}

	if _, err := ClientTLSConfig(p(CACertFile), p("desk.pem"), p("desk-key.pem"), ""); err == nil {
		t.Error("ClientTLSConfig accepted an empty server name")
	}
	if _, err := ServerTLSConfig(p("desk-key.pem"), p("server.pem"), p("server-key.pem")); err == nil {
		t.Error("ServerTLSConfig accepted a CA file without certificates")
	}
}

func TestKeyFilesArePKCS8(t *testing.T) {
	dir := t.TempDir()
	mustCA(t, dir)
	block, _ := pem.Decode(mustRead(t, filepath.Join(dir, CAKeyFile)))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("CA key PEM block = %v, want PRIVATE KEY", block)
	}
}
