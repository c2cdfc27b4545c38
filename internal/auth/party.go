// Package auth says who is calling and whether they may.
//
// A caller authenticates with mutual TLS. Its identity is the single
// taxrefund URI SAN of its verified client certificate, never a request
// field:
//
//	taxrefund://store/<store-code>
//	taxrefund://customs/<port>/<officer>
//	taxrefund://desk/<desk-code>
//	taxrefund://desk/<desk-code>/<cashier>
//	taxrefund://authority/<office>
//	taxrefund://agency/<agency-code>/<user>
//
// Segments are 1 to 64 characters of [A-Za-z0-9._-] (not "." or ".."); a
// port is three uppercase letters (an IATA code such as CKG). The gRPC
// interceptors of Authorizer resolve the Party, check it against a Matrix of
// allowed roles per method and put it into the request context.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of party identities.
const Scheme = "taxrefund"

// Role is the kind of party calling the service.
type Role string

// The roles of DOMAIN.md §1. The traveller has no API.
const (
	RoleStore     Role = "store"     // a participating store's POS
	RoleCustoms   Role = "customs"   // a customs officer at a port of exit
	RoleDesk      Role = "desk"      // a refund agency counter or block refund point
	RoleAuthority Role = "authority" // the tax authority
	RoleAgency    Role = "agency"    // a refund agency's back office
)

// Roles returns every role, in a fixed order.
func Roles() []Role {
	return []Role{RoleStore, RoleCustoms, RoleDesk, RoleAuthority, RoleAgency}
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleStore, RoleCustoms, RoleDesk, RoleAuthority, RoleAgency:
		return true
	}
	return false
}

// Party is an authenticated caller. Only the fields of its Role are set:
// Store for a store; Port and Officer for customs; Desk and optionally
// Cashier for a desk; Office for the authority; Agency and User for an
// agency's back office. URI is the canonical identity
// URI the party was parsed from.
type Party struct {
	Role    Role
	Store   string
	Port    string
	Officer string
	Desk    string
	Cashier string
	Office  string
	Agency  string
	User    string
	URI     string
	// Serial is the certificate's serial number in lower-case hex (empty when the party
	// was not read from a certificate), checked against the revocation list.
	Serial string
	// KeyHash is the SHA-256 of the certificate's SubjectPublicKeyInfo in lower-case hex
	// (empty when not read from a certificate): with Serial, what binds the certificate
	// to its entry in the identity register.
	KeyHash string
}

// String returns the party's identity URI.
func (p Party) String() string {
	return p.URI
}

// Code names the party within its role: the store, port, desk, office or agency code —
// what the database's row-level security checks rows against.
func (p Party) Code() string {
	switch p.Role {
	case RoleStore:
		return p.Store
	case RoleCustoms:
		return p.Port
	case RoleDesk:
		return p.Desk
	case RoleAuthority:
		return p.Office
	case RoleAgency:
		return p.Agency
	}
	return ""
}

const maxSegment = 64

// ParseURI parses a party identity URI. Anything but the six accepted forms
// is an error: another scheme, user info, a port, a query or fragment (even an
// empty one), percent-escapes in the path, empty, extra or missing segments.
//
// The host (the role) must be written exactly in lower case. url.Parse has
// already decoded percent-escapes in the host, so those cannot be detected
// here; they can only spell one of the role names, which is harmless.
func ParseURI(u *url.URL) (Party, error) {
	if u == nil {
		return Party{}, errors.New("parse party URI: nil")
	}
	switch {
	case u.Scheme != Scheme:
		return Party{}, fmt.Errorf("parse party URI: scheme %q, want %q", u.Scheme, Scheme)
	case u.Opaque != "" || u.OmitHost:
		return Party{}, errors.New("parse party URI: not of the form taxrefund://role/...")
	case u.User != nil:
		return Party{}, errors.New("parse party URI: user info not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return Party{}, errors.New("parse party URI: query not allowed")
	case u.Fragment != "" || u.RawFragment != "":
		return Party{}, errors.New("parse party URI: fragment not allowed")
	case u.RawPath != "":
		return Party{}, errors.New("parse party URI: percent-escapes not allowed")
	case strings.Contains(u.Host, ":"):
		return Party{}, errors.New("parse party URI: port not allowed")
	case !strings.HasPrefix(u.Path, "/"):
		return Party{}, errors.New("parse party URI: missing path")
	}
	role := Role(u.Host)
	segs := strings.Split(u.Path[1:], "/")
	for i, s := range segs {
		if !validSegment(s) {
			return Party{}, fmt.Errorf("parse party URI: path segment %d is not 1-%d characters of [A-Za-z0-9._-]", i+1, maxSegment)
		}
	}
	p := Party{Role: role}
	switch {
	case role == RoleStore && len(segs) == 1:
		p.Store = segs[0]
	case role == RoleCustoms && len(segs) == 2:
		if !validPort(segs[0]) {
			return Party{}, errors.New("parse party URI: port of exit must be three uppercase letters")
		}
		p.Port, p.Officer = segs[0], segs[1]
	case role == RoleDesk && (len(segs) == 1 || len(segs) == 2):
		p.Desk = segs[0]
		if len(segs) == 2 {
			p.Cashier = segs[1]
		}
	case role == RoleAuthority && len(segs) == 1:
		p.Office = segs[0]
	case role == RoleAgency && len(segs) == 2:
		p.Agency, p.User = segs[0], segs[1]
	case !role.Valid():
		return Party{}, fmt.Errorf("parse party URI: unknown role %q", u.Host)
	default:
		return Party{}, fmt.Errorf("parse party URI: wrong number of path segments (%d) for role %s", len(segs), role)
	}
	p.URI = Scheme + "://" + u.Host + u.Path
	return p, nil
}

func validSegment(s string) bool {
	if s == "" || len(s) > maxSegment || strings.Trim(s, ".") == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func validPort(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// FromCertificate returns the party named by a verified client certificate.
// The certificate must not be a CA and must carry exactly one taxrefund URI
// SAN: a certificate naming two parties identifies neither. URI SANs of other
// schemes are ignored. Verifying the chain is the TLS layer's job.
func FromCertificate(cert *x509.Certificate) (Party, error) {
	if cert == nil {
		return Party{}, errors.New("party from certificate: no certificate")
	}
	if cert.IsCA {
		return Party{}, errors.New("party from certificate: CA certificate cannot identify a party")
	}
	var found *url.URL
	n := 0
	for _, u := range cert.URIs {
		if u != nil && u.Scheme == Scheme {
			found = u
			n++
		}
	}
	if n != 1 {
		return Party{}, fmt.Errorf("party from certificate: %d %s URI SANs, want exactly 1", n, Scheme)
	}
	p, err := ParseURI(found)
	if err != nil {
		return Party{}, err
	}
	if cert.SerialNumber != nil {
		p.Serial = cert.SerialNumber.Text(16)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	p.KeyHash = hex.EncodeToString(sum[:])
	return p, nil
}

type partyKey struct{}

// NewContext returns a copy of ctx carrying p.
func NewContext(ctx context.Context, p Party) context.Context {
	return context.WithValue(ctx, partyKey{}, p)
}

// FromContext returns the party stored in ctx by NewContext (or by the
// interceptors), and whether there was one.
func FromContext(ctx context.Context) (Party, bool) {
	p, ok := ctx.Value(partyKey{}).(Party)
	return p, ok
}
