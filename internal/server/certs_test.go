package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	authorityv1 "taxrefund/api/taxrefund/authority/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/auth"
	"taxrefund/internal/dbtest"
	"taxrefund/internal/pki"
	"taxrefund/internal/server"
)

// caOf loads the harness CA's certificate and key from its certificate directory.
func caOf(t *testing.T, dir string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert, pair.PrivateKey.(crypto.Signer)
}

// clientTemplate is a client certificate valid from a minute ago for a day, naming uris.
func clientTemplate(t *testing.T, uris ...string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "security test client"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	return tmpl
}

// mint signs tmpl with a fresh key by parent (parentKey) and returns the key pair.
func mint(t *testing.T, tmpl, parent *x509.Certificate, parentKey crypto.Signer) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil { // self-signed
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// clientTLS is a client configuration presenting cert and trusting the harness CA.
func (e *secEnv) clientTLS(t *testing.T, cert tls.Certificate) *tls.Config {
	t.Helper()
	ca, _ := caOf(t, e.certDir)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
}

// dialAs returns a connection presenting cert, closed when the test ends.
func (e *secEnv) dialAs(t *testing.T, cert tls.Certificate) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(e.clientTLS(t, cert))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawTLS completes a TLS 1.3 handshake presenting cert and reads the server's first
// bytes (its HTTP/2 settings). A server that refuses the client certificate does so
// after the client's side of the handshake, with an alert: the read returns it. nil means
// the server accepted the certificate.
func (e *secEnv) rawTLS(t *testing.T, cert tls.Certificate) error {
	t.Helper()
	cfg := e.clientTLS(t, cert)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", e.addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = errors.New("read nothing")
	}
	return err
}

// issueCall issues a valid form as the caller of conn and returns the error.
func (e *secEnv) issueCall(t *testing.T, conn grpc.ClientConnInterface, doc, inv string) error {
	t.Helper()
	_, err := storev1.NewStoreServiceClient(conn).IssueForm(ctxTimeout(t), domainExample(e.tr.secret(doc), inv))
	return err
}

// wantRefusedBeforeHandler asserts err has code and that nothing was written since before.
func (e *secEnv) wantRefusedBeforeHandler(t *testing.T, err error, code codes.Code, before map[string]int64) *status.Status {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Errorf("code %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if d := countDiff(before, e.tableCounts(t)); d != "" {
		t.Errorf("a refused caller wrote: %s", d)
	}
	return st
}

// TestExpiredClientCertificateRefused: a store certificate signed by the service's CA
// that expired a minute ago is refused in the TLS handshake (alert "expired
// certificate") and its call never reaches a handler. Broken control: a server whose
// clock is set inside the certificate's validity accepts the very same certificate and
// serves the call, so the refusal above is the expiry check.
func TestExpiredClientCertificateRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ca, caKey := caOf(t, env.certDir)
	tmpl := clientTemplate(t, identities[storeJFB1])
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Minute), time.Now().Add(-time.Minute)
	expired := mint(t, tmpl, ca, caKey)

	if err := env.rawTLS(t, expired); err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Errorf("TLS with an expired certificate: %v, want the alert \"expired certificate\"", err)
	}
	before := env.tableCounts(t)
	env.wantRefusedBeforeHandler(t, env.issueCall(t, env.dialAs(t, expired), "X1111-0001", "INV-EXP"), codes.Unavailable, before)

	t.Run("broken control: a server clock inside the validity", func(t *testing.T) {
		back := time.Now().Add(-90 * time.Second)
		ctl := newSecEnv(t, secOptions{tls: func(c *tls.Config) { c.Time = func() time.Time { return back } }})
		ca, caKey := caOf(t, ctl.certDir)
		cert := mint(t, tmpl, ca, caKey)
		if err := ctl.rawTLS(t, cert); err != nil {
			t.Fatalf("the control server refused the certificate: %v", err)
		}
		if err := ctl.issueCall(t, ctl.dialAs(t, cert), "X1111-0001", "INV-EXP"); err != nil {
			t.Errorf("the control server did not serve the certificate: %v", err)
		}
	})
}

// TestForeignCAClientCertificateRefused: a certificate for a real store from another CA
// is refused in the handshake ("unknown certificate authority"). Broken control: a
// server that does not verify client certificates (RequireAnyClientCert) completes the
// same handshake, so the TLS assertion detects a missing verification; the authorizer
// still refuses the call as UNAUTHENTICATED, as it only trusts verified chains.
func TestForeignCAClientCertificateRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	otherDir := t.TempDir()
	other, err := pki.EnsureCA(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.IssueClient(otherDir, "rogue", identities[storeJFB1]); err != nil {
		t.Fatal(err)
	}
	rogue, err := tls.LoadX509KeyPair(filepath.Join(otherDir, "rogue.pem"), filepath.Join(otherDir, "rogue-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.rawTLS(t, rogue); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("TLS with another CA's certificate: %v, want the alert \"unknown certificate authority\"", err)
	}
	before := env.tableCounts(t)
	env.wantRefusedBeforeHandler(t, env.issueCall(t, env.dialAs(t, rogue), "X1111-0002", "INV-CA"), codes.Unavailable, before)

	t.Run("broken control: a server that does not verify client certificates", func(t *testing.T) {
		ctl := newSecEnv(t, secOptions{tls: func(c *tls.Config) { c.ClientAuth = tls.RequireAnyClientCert }})
		if err := ctl.rawTLS(t, rogue); err != nil {
			t.Fatalf("the unverifying server refused the handshake: %v", err)
		}
		before := ctl.tableCounts(t)
		st := ctl.wantRefusedBeforeHandler(t, ctl.issueCall(t, ctl.dialAs(t, rogue), "X1111-0002", "INV-CA"), codes.Unauthenticated, before)
		if st.Message() != "no verified client certificate" {
			t.Errorf("message %q", st.Message())
		}
	})
}

// TestCACertificateAsClientRefused: the service's own CA certificate, presented with its
// key, is its own trust anchor but lists no clientAuth extended key usage: the handshake
// refuses it. A CA certificate that does list clientAuth and carries a store's URI,
// signed by the service's CA, passes TLS and is refused as no party: UNAUTHENTICATED,
// nothing written. Broken control: the same certificate without the CA flag is served as
// the store, so the refusal is the CA check.
func TestCACertificateAsClientRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	caPair, err := tls.LoadX509KeyPair(filepath.Join(env.certDir, pki.CACertFile), filepath.Join(env.certDir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	before := env.tableCounts(t)
	if err := env.rawTLS(t, caPair); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("TLS with the CA certificate as a client: %v, want the alert \"bad certificate\"", err)
	}

	ca, caKey := caOf(t, env.certDir)
	caLike := func(isCA bool) tls.Certificate {
		tmpl := clientTemplate(t, identities[storeJFB1])
		tmpl.IsCA = isCA
		if isCA {
			tmpl.KeyUsage |= x509.KeyUsageCertSign
		}
		return mint(t, tmpl, ca, caKey)
	}
	st := env.wantRefusedBeforeHandler(t, env.issueCall(t, env.dialAs(t, caLike(true)), "X1111-0003", "INV-CA2"), codes.Unauthenticated, before)
	if st.Message() != "client certificate does not name a party" {
		t.Errorf("message %q", st.Message())
	}
	t.Run("broken control: the same certificate without the CA flag", func(t *testing.T) {
		if err := env.issueCall(t, env.dialAs(t, caLike(false)), "X1111-0003", "INV-CA3"); err != nil {
			t.Errorf("a leaf with the store's URI was not served: %v", err)
		}
	})
}

// TestServerCertificateAsClientRefused: the service's server certificate (ServerAuth
// only) is refused as a client certificate in the handshake.
func TestServerCertificateAsClientRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	srvPair, err := tls.LoadX509KeyPair(filepath.Join(env.certDir, "server.pem"), filepath.Join(env.certDir, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.rawTLS(t, srvPair); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("TLS with the server certificate as a client: %v, want the alert \"bad certificate\"", err)
	}
}

// TestTwoIdentitiesInOneCertificateRefused: a certificate naming a store and the
// authority identifies neither: every call is UNAUTHENTICATED, never served as either.
// Broken control: one taxrefund URI (with a URI of another scheme beside it, which is
// ignored) is served as that party.
func TestTwoIdentitiesInOneCertificateRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	ca, caKey := caOf(t, env.certDir)
	two := env.dialAs(t, mint(t, clientTemplate(t, identities[storeJFB1], identities[sat]), ca, caKey))
	before := env.tableCounts(t)
	env.wantRefusedBeforeHandler(t, env.issueCall(t, two, "X1111-0004", "INV-TWO"), codes.Unauthenticated, before)
	_, err := authorityv1.NewAuthorityServiceClient(two).GetRegistry(ctx, &authorityv1.GetRegistryRequest{})
	env.wantRefusedBeforeHandler(t, err, codes.Unauthenticated, before)

	t.Run("broken control: one taxrefund URI", func(t *testing.T) {
		oneCert := mint(t, clientTemplate(t, identities[sat], "https://sat.example/officials/7"), ca, caKey)
		dbtest.RegisterCertificate(t, env.pool, oneCert.Leaf)
		one := env.dialAs(t, oneCert)
		if _, err := authorityv1.NewAuthorityServiceClient(one).GetRegistry(ctx, &authorityv1.GetRegistryRequest{}); err != nil {
			t.Errorf("the authority with one taxrefund URI was not served: %v", err)
		}
		storeOnly := env.dialAs(t, mint(t, clientTemplate(t, identities[storeJFB1]), ca, caKey))
		if err := env.issueCall(t, storeOnly, "X1111-0004", "INV-ONE"); err != nil {
			t.Errorf("the store with one URI was not served: %v", err)
		}
	})
}

// TestMethodWithoutLeadingSlashRefused: a call whose :path lacks the leading slash is
// refused by the gRPC server as a malformed method name (UNIMPLEMENTED) and writes
// nothing; should such a name reach the authorizer, it refuses it too (PERMISSION_DENIED:
// the matrix only knows "/package.Service/Method" names). Broken controls: the same
// request on the proper path is served, and the authorizer lets the proper name through.
func TestMethodWithoutLeadingSlashRefused(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	const slashless = "taxrefund.store.v1.StoreService/IssueForm"
	conn := env.conn(t, storeJFB1)
	req := domainExample(env.tr.secret("X1111-0005"), "INV-SLASH")
	before := env.tableCounts(t)
	err := conn.Invoke(ctx, slashless, req, &storev1.IssueFormResponse{})
	st := env.wantRefusedBeforeHandler(t, err, codes.Unimplemented, before)
	if !strings.Contains(st.Message(), "malformed method name") {
		t.Errorf("message %q", st.Message())
	}
	intercept := (&auth.Authorizer{Matrix: auth.DefaultMatrix()}).Unary()
	leaf := readLeaf(t, env.certDir, storeJFB1)
	authorize := func(method string) error {
		_, err := intercept(tlsPeerContext(leaf), nil, &grpc.UnaryServerInfo{FullMethod: method},
			func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	if st := status.Convert(authorize(slashless)); st.Code() != codes.PermissionDenied {
		t.Errorf("the authorizer on %q: %v, want PERMISSION_DENIED", slashless, st)
	}
	t.Run("broken control: the proper path", func(t *testing.T) {
		if err := authorize("/" + slashless); err != nil {
			t.Errorf("the authorizer on the proper name: %v", err)
		}
		if err := conn.Invoke(ctx, "/"+slashless, req, &storev1.IssueFormResponse{}); err != nil {
			t.Errorf("the same request on the proper path: %v", err)
		}
	})
}

// serialHexWithColons writes a serial as openssl prints it: upper-case byte pairs
// separated by colons, e.g. "0A:1B:...".
func serialHexWithColons(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// TestRevokedCertificateStopsAtOnce: the authority revokes a store's certificate by its
// serial (as openssl prints it); the next call with that certificate is PERMISSION_DENIED
// and writes nothing, while another certificate of the same store, with another serial,
// is still served. The control is the same certificate served just before.
func TestRevokedCertificateStopsAtOnce(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	ca, caKey := caOf(t, env.certDir)
	first := mint(t, clientTemplate(t, identities[storeJFB1]), ca, caKey)
	second := mint(t, clientTemplate(t, identities[storeJFB1]), ca, caKey)
	c1, c2 := env.dialAs(t, first), env.dialAs(t, second)
	if _, err := storev1.NewStoreServiceClient(c1).ListForms(ctx, &storev1.ListFormsRequest{}); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	resp, err := env.authority(t, sat).RevokeCertificate(ctx, &authorityv1.RevokeCertificateRequest{
		RequestId: uuid.NewString(), Serial: serialHexWithColons(first.Leaf.SerialNumber), Reason: "POS stolen"})
	if err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	if resp.GetSerial() != first.Leaf.SerialNumber.Text(16) {
		t.Errorf("revoked serial %q, want %q", resp.GetSerial(), first.Leaf.SerialNumber.Text(16))
	}
	before := env.tableCounts(t)
	_, err = storev1.NewStoreServiceClient(c1).ListForms(ctx, &storev1.ListFormsRequest{})
	st := env.wantRefusedBeforeHandler(t, err, codes.PermissionDenied, before)
	if !strings.Contains(st.Message(), "not active") {
		t.Errorf("message %q", st.Message())
	}
	env.wantRefusedBeforeHandler(t, env.issueCall(t, c1, "X1111-0006", "INV-REV"), codes.PermissionDenied, before)
	if err := env.issueCall(t, c2, "X1111-0006", "INV-REV"); err != nil {
		t.Errorf("the store's other certificate: %v", err)
	}
}

// TestExitedStoreStopsAtOnce: after ExitStore, the store's certificate is PERMISSION_DENIED
// on its next call and writes nothing; a suspended store still reads its forms but its
// new forms are refused (FAILED_PRECONDITION STORE_NOT_ACTIVE), until it is reinstated.
func TestExitedStoreStopsAtOnce(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	authority := env.authority(t, sat)
	form := env.issue(t, storeJFB2, domainExample(env.tr.secret("X1111-0007"), "INV-EXIT-1"))
	if _, err := authority.ExitStore(ctx, &authorityv1.ExitStoreRequest{RequestId: uuid.NewString(), Code: "S-JFB-2", Reason: "contract ended"}); err != nil {
		t.Fatalf("ExitStore: %v", err)
	}
	before := env.tableCounts(t)
	_, err := env.store(t, storeJFB2).GetForm(ctx, &storev1.GetFormRequest{FormNumber: form.GetNumber()})
	env.wantRefusedBeforeHandler(t, err, codes.PermissionDenied, before)
	env.wantRefusedBeforeHandler(t, env.issueCall(t, env.conn(t, storeJFB2), "X1111-0007", "INV-EXIT-2"), codes.PermissionDenied, before)

	t.Run("suspended", func(t *testing.T) {
		mine := env.issue(t, storeJFB1, domainExample("X1111-0007", "INV-SUSP-1"))
		if _, err := authority.SuspendStore(ctx, &authorityv1.SuspendStoreRequest{RequestId: uuid.NewString(), Code: "S-JFB-1", Reason: "audit"}); err != nil {
			t.Fatalf("SuspendStore: %v", err)
		}
		if _, err := env.store(t, storeJFB1).GetForm(ctx, &storev1.GetFormRequest{FormNumber: mine.GetNumber()}); err != nil {
			t.Errorf("a suspended store reading its form: %v", err)
		}
		before := env.tableCounts(t)
		_, err := env.store(t, storeJFB1).IssueForm(ctx, domainExample("X1111-0007", "INV-SUSP-2"))
		checkStatus(t, err, want{codes.FailedPrecondition, "STORE_NOT_ACTIVE", nil})
		if d := countDiff(before, env.tableCounts(t)); d != "" {
			t.Errorf("a suspended store's refused form wrote: %s", d)
		}
		if _, err := authority.ReinstateStore(ctx, &authorityv1.ReinstateStoreRequest{RequestId: uuid.NewString(), Code: "S-JFB-1", Reason: "cleared"}); err != nil {
			t.Fatalf("ReinstateStore: %v", err)
		}
		env.issue(t, storeJFB1, domainExample("X1111-0007", "INV-SUSP-2"))
	})
}

// TestRegistryCacheIsBrief: Registry.Active caches an answer for its TTL, then asks the
// database again: an exit and a revocation take effect within the TTL, not later.
func TestRegistryCacheIsBrief(t *testing.T) {
	t.Parallel()
	env := newSecEnv(t, secOptions{})
	ctx := ctxTimeout(t)
	const ttl = time.Second
	reg := server.NewRegistry(env.app, ttl)
	store2 := auth.Party{Role: auth.RoleStore, Store: "S-JFB-2", URI: identities[storeJFB2], Serial: "abc123"}
	store1 := auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: identities[storeJFB1], Serial: "def456"}
	checked := time.Now()
	for _, p := range []auth.Party{store1, store2} {
		if err := reg.Active(ctx, p); err != nil {
			t.Fatalf("%s before: %v", p, err)
		}
	}
	// Every answer was asked for by now: the last one expires a TTL after this.
	asked := time.Now()
	if _, err := env.pool.Exec(ctx, `UPDATE stores SET status = 'EXITED' WHERE code = 'S-JFB-2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := env.pool.Exec(ctx, `INSERT INTO revoked_certificates (serial, revoked_by) VALUES ('def456', 'test')`); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cached answers stand (the cache is real)...
	for _, p := range []auth.Party{store1, store2} {
		err := reg.Active(ctx, p)
		if since := time.Since(checked); since < ttl && err != nil {
			t.Errorf("%s %v after its check, within the TTL: %v, want the cached nil", p, since, err)
		}
	}
	// ...and after it, never.
	time.Sleep(time.Until(asked.Add(ttl + 50*time.Millisecond)))
	for _, p := range []auth.Party{store1, store2} {
		if err := reg.Active(ctx, p); !errors.Is(err, auth.ErrInactive) {
			t.Errorf("%s (serial %s) after the TTL: %v, want ErrInactive", p, p.Serial, err)
		}
	}
	// The cache is per certificate: another serial of S-JFB-1 is still active.
	if err := reg.Active(ctx, auth.Party{Role: auth.RoleStore, Store: "S-JFB-1", URI: identities[storeJFB1], Serial: "0fe"}); err != nil {
		t.Errorf("another certificate of S-JFB-1: %v", err)
	}
}
