package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseURI(t *testing.T) {
	long := strings.Repeat("a", 64)
	good := []struct {
		in   string
		want Party
	}{
		{"taxrefund://store/S-001", Party{Role: RoleStore, Store: "S-001", URI: "taxrefund://store/S-001"}},
		{"taxrefund://customs/CKG/officer.7", Party{Role: RoleCustoms, Port: "CKG", Officer: "officer.7", URI: "taxrefund://customs/CKG/officer.7"}},
		{"taxrefund://desk/TFU-1", Party{Role: RoleDesk, Desk: "TFU-1", URI: "taxrefund://desk/TFU-1"}},
		{"taxrefund://desk/TFU-1/cashier_2", Party{Role: RoleDesk, Desk: "TFU-1", Cashier: "cashier_2", URI: "taxrefund://desk/TFU-1/cashier_2"}},
		{"taxrefund://authority/CQ.tax", Party{Role: RoleAuthority, Office: "CQ.tax", URI: "taxrefund://authority/CQ.tax"}},
		{"taxrefund://store/" + long, Party{Role: RoleStore, Store: long, URI: "taxrefund://store/" + long}},
		{"taxrefund://store/.a", Party{Role: RoleStore, Store: ".a", URI: "taxrefund://store/.a"}},
		// url.Parse lower-cases the scheme (RFC 3986 §3.1): same identity.
		{"TaxRefund://store/S1", Party{Role: RoleStore, Store: "S1", URI: "taxrefund://store/S1"}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			u, err := url.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseURI(u)
			if err != nil {
				t.Fatalf("ParseURI(%s): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseURI(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.want.URI {
				t.Fatalf("String() = %q, want %q", got.String(), tc.want.URI)
			}
		})
	}

	bad := []string{
		"",
		"https://store/S1",
		"store/S1",
		"taxrefund:store/S1",
		"taxrefund:/store/S1",
		"taxrefund:///store/S1",
		"taxrefund://store",
		"taxrefund://store/",
		"taxrefund://store/S1/",
		"taxrefund://store//S1",
		"taxrefund://store/S1/extra",
		"taxrefund://store/S1?x=1",
		"taxrefund://store/S1?",
		"taxrefund://store/S1#frag",
		"taxrefund://user@store/S1",
		"taxrefund://user:pw@store/S1",
		"taxrefund://store:443/S1",
		"taxrefund://store:/S1",
		"taxrefund://STORE/S1",
		"taxrefund://shop/S1",
		"taxrefund://traveller/P1",
		"taxrefund://store/S%31",
		"taxrefund://store/S%2F1",
		"taxrefund://store/S%201",
		"taxrefund://store/S1;v=2",
		"taxrefund://store/S~1",
		"taxrefund://store/S1é",
		"taxrefund://store/" + long + "a",
		"taxrefund://store/.",
		"taxrefund://store/..",
		"taxrefund://store/...",
		"taxrefund://customs/CKG",
		"taxrefund://customs/CKG/",
		"taxrefund://customs/ckg/O1",
		"taxrefund://customs/CK/O1",
		"taxrefund://customs/CKGX/O1",
		"taxrefund://customs/CK1/O1",
		"taxrefund://customs/CKG/O1/x",
		"taxrefund://desk",
		"taxrefund://desk/D1/C1/x",
		"taxrefund://desk/D1//",
		"taxrefund://authority",
		"taxrefund://authority/A/B",
	}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			u, err := url.Parse(in)
			if err != nil {
				return // rejected even earlier
			}
			if p, err := ParseURI(u); err == nil {
				t.Fatalf("ParseURI(%q) = %+v, want error", in, p)
			}
		})
	}

	if _, err := ParseURI(nil); err == nil {
		t.Error("ParseURI(nil) succeeded")
	}
}

// FuzzParseURI checks that whatever ParseURI accepts, its canonical URI
// parses back to the same party.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"taxrefund://store/S1", "taxrefund://customs/CKG/O1", "taxrefund://desk/D/C", "taxrefund://authority/A", "taxrefund://store/S%31", "taxrefund://x@store/S1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		p, err := ParseURI(u)
		if err != nil {
			return
		}
		if !p.Role.Valid() {
			t.Fatalf("%q: accepted with role %q", s, p.Role)
		}
		u2, err := url.Parse(p.URI)
		if err != nil {
			t.Fatalf("%q: canonical URI %q does not parse: %v", s, p.URI, err)
		}
		p2, err := ParseURI(u2)
		if err != nil || p2 != p {
			t.Fatalf("%q: canonical URI %q reparses to %+v, %v; want %+v", s, p.URI, p2, err, p)
		}
	})
}

// newCert returns a parsed self-signed certificate with the given URIs.
func newCert(t testing.TB, isCA bool, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
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

func TestFromCertificate(t *testing.T) {
	cert := newCert(t, false, "taxrefund://desk/D1/C1")
	p, err := FromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	// The key hash is the SHA-256 of the DER public key (SubjectPublicKeyInfo).
	spki, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	want := Party{Role: RoleDesk, Desk: "D1", Cashier: "C1", URI: "taxrefund://desk/D1/C1", Serial: cert.SerialNumber.Text(16),
		KeyHash: hex.EncodeToString(sum[:])}
	if p != want || p.Serial == "" {
		t.Fatalf("FromCertificate = %+v, want %+v", p, want)
	}

	// Other schemes are not identities and do not count.
	p, err = FromCertificate(newCert(t, false, "spiffe://example.org/pos", "taxrefund://store/S1"))
	if err != nil || p.Store != "S1" {
		t.Fatalf("with an extra spiffe URI: %+v, %v; want store S1", p, err)
	}

	bad := []struct {
		name string
		cert *x509.Certificate
	}{
		{"nil", nil},
		{"CA certificate", newCert(t, true, "taxrefund://authority/A1")},
		{"two identities", newCert(t, false, "taxrefund://store/S1", "taxrefund://store/S2")},
		{"two roles", newCert(t, false, "taxrefund://store/S1", "taxrefund://authority/A1")},
		{"same identity twice", newCert(t, false, "taxrefund://store/S1", "taxrefund://store/S1")},
		{"no URI", newCert(t, false)},
		{"only another scheme", newCert(t, false, "spiffe://example.org/store/S1")},
		{"malformed identity", newCert(t, false, "taxrefund://store/S1/extra")},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := FromCertificate(tc.cert); err == nil {
				t.Fatalf("FromCertificate = %+v, want error", p)
			}
		})
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := FromContext(ctx); ok {
		t.Fatal("FromContext found a party in an empty context")
	}
	want := Party{Role: RoleAuthority, Office: "A1", URI: "taxrefund://authority/A1"}
	got, ok := FromContext(NewContext(ctx, want))
	if !ok || got != want {
		t.Fatalf("FromContext = %+v, %v; want %+v, true", got, ok, want)
	}
}
