// Package identity is the register of the people and points that hold client
// certificates: the tax office's officials, customs officers, cashiers, refund points (a
// desk's own certificate) and agency back-office users. Each entry is an identity URI
// (see package auth) with a kind, its party (office, port, desk or agency) and person,
// and a status — REGISTERED, SUSPENDED or REVOKED, with the time it took effect and the
// reason — and the certificates bound to it by serial number and public-key hash
// (SHA-256 of the SubjectPublicKeyInfo).
//
// The server asks Check on every call (behind a short cache): a certificate the CA
// signed is served only when its identity is registered, REGISTERED, and the certificate
// itself is bound to it and not revoked. Stores are not in this register: a store's
// certificate stands on the stores table (its status) and the revocation list.
//
// Every change is one transaction with its audit event (audit_events), naming who did it.
package identity

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/audit"
	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/pki"
)

// Kind is what an identity is.
type Kind string

// The kinds of registered identities.
const (
	Official       Kind = "OFFICIAL"        // taxrefund://authority/<office>
	CustomsOfficer Kind = "CUSTOMS_OFFICER" // taxrefund://customs/<port>/<officer>
	Cashier        Kind = "CASHIER"         // taxrefund://desk/<desk>/<cashier>
	RefundPoint    Kind = "REFUND_POINT"    // taxrefund://desk/<desk>: the desk's own certificate
	AgencyUser     Kind = "AGENCY_USER"     // taxrefund://agency/<agency>/<user>
)

// Statuses of an identity. REVOKED is final.
const (
	Registered = "REGISTERED"
	Suspended  = "SUSPENDED"
	Revoked    = "REVOKED"
)

// Entry is one identity of the register.
type Entry struct {
	URI         string
	Kind        Kind
	Party       string
	Person      string
	Status      string
	EffectiveAt time.Time
	Reason      string
}

// Of returns the register entry a party's identity would have (status unset); ok is
// false for a store, which the register does not hold.
func Of(p auth.Party) (e Entry, ok bool) {
	e.URI = p.URI
	switch p.Role {
	case auth.RoleAuthority:
		e.Kind, e.Party = Official, p.Office
	case auth.RoleCustoms:
		e.Kind, e.Party, e.Person = CustomsOfficer, p.Port, p.Officer
	case auth.RoleDesk:
		e.Kind, e.Party, e.Person = Cashier, p.Desk, p.Cashier
		if p.Cashier == "" {
			e.Kind = RefundPoint
		}
	case auth.RoleAgency:
		e.Kind, e.Party, e.Person = AgencyUser, p.Agency, p.User
	default:
		return Entry{}, false
	}
	return e, true
}

// Querier runs a query: the pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Check says whether the certificate p was read from may act: nil when its identity is
// REGISTERED and the certificate is bound to it and not revoked; an error wrapping
// auth.ErrUnregistered when the identity or the certificate is not registered; one
// wrapping auth.ErrInactive when the identity is suspended or revoked or the certificate
// revoked; any other error is the database's. A store's party is not checked here (nil).
func Check(ctx context.Context, q Querier, p auth.Party) error {
	if _, ok := Of(p); !ok {
		return nil
	}
	key, err := hex.DecodeString(p.KeyHash)
	if err != nil || len(key) != 32 || p.Serial == "" {
		return fmt.Errorf("identity %s: no certificate to check: %w", p.URI, auth.ErrUnregistered)
	}
	var standing string
	if err := q.QueryRow(ctx, `SELECT identity_standing($1, $2, $3)`, p.URI, p.Serial, key).Scan(&standing); err != nil {
		return fmt.Errorf("identity standing: %w", err)
	}
	switch standing {
	case Registered:
		return nil
	case "UNKNOWN", "UNBOUND":
		return fmt.Errorf("identity %s: %s: %w", p.URI, strings.ToLower(standing), auth.ErrUnregistered)
	default:
		return fmt.Errorf("identity %s: %s: %w", p.URI, strings.ToLower(standing), auth.ErrInactive)
	}
}

// Certificate is a certificate as the register binds it.
type Certificate struct {
	Serial   string // lower-case hex, no leading zeros
	KeyHash  string // SHA-256 of the SubjectPublicKeyInfo, lower-case hex
	URI      string
	NotAfter time.Time
	Revoked  bool
}

// Register changes and reads the register. It works as the database's owner (the
// service's role can only ask Check).
type Register struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns a Register; now nil means time.Now.
func New(pool *pgxpool.Pool, now func() time.Time) *Register {
	return &Register{pool: pool, now: db.Clock(now)}
}

// Errors a change can answer, wrapped with the identity or serial.
var (
	ErrNotFound = errors.New("not in the identity register")
	ErrRevoked  = errors.New("the identity is revoked (revocation is final: register a new identity)")
	ErrStore    = errors.New("a store's certificate identity is registered in the stores register, not here")
	ErrTaken    = errors.New("the certificate is bound to another identity")
)

// parse reads the identity of a certificate the caller is about to hand out.
func parse(cert *x509.Certificate) (Entry, Certificate, error) {
	p, err := auth.FromCertificate(cert)
	if err != nil {
		return Entry{}, Certificate{}, err
	}
	e, ok := Of(p)
	if !ok {
		return Entry{}, Certificate{}, fmt.Errorf("%s: %w", p.URI, ErrStore)
	}
	return e, Certificate{Serial: p.Serial, KeyHash: p.KeyHash, URI: p.URI, NotAfter: cert.NotAfter}, nil
}

// Issue registers the certificate's identity (REGISTERED, when it is new) and binds the
// certificate to it. Issuing a certificate that is already bound changes nothing. A
// revoked identity gets no certificate (ErrRevoked); a suspended one stays suspended.
func (r *Register) Issue(ctx context.Context, by string, cert *x509.Certificate) (Entry, error) {
	e, c, err := parse(cert)
	if err != nil {
		return Entry{}, err
	}
	var out Entry
	err = db.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		cur, found, err := r.lock(ctx, tx, e.URI)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		switch {
		case !found:
			cur = e
			cur.Status, cur.EffectiveAt, cur.Reason = Registered, r.now(), "issued"
			b.Queue(`INSERT INTO identities (uri, kind, party, person, status, effective_at, reason, changed_by)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, cur.URI, cur.Kind, cur.Party, cur.Person, cur.Status, cur.EffectiveAt, cur.Reason, by)
			audit.Queue(b, by, "IDENTITY_REGISTERED", cur.URI, uuid.Nil, map[string]any{"kind": cur.Kind, "party": cur.Party, "person": cur.Person})
		case cur.Status == Revoked:
			return fmt.Errorf("%s: %w", e.URI, ErrRevoked)
		}
		if !found {
			if err := partyExists(ctx, tx, e); err != nil {
				return err
			}
		}
		out = cur
		if _, err := r.bind(ctx, tx, b, by, c); err != nil || b.Len() == 0 {
			return err
		}
		return db.SendBatch(ctx, tx, b)
	})
	return out, err
}

// ErrNoParty: the port, desk or agency an identity names is not in the registry.
var ErrNoParty = errors.New("no such port, desk or agency in the registry")

// partyExists checks that the port, desk or agency of a new identity exists (any tax
// office may be named).
func partyExists(ctx context.Context, tx pgx.Tx, e Entry) error {
	var sql string
	switch e.Kind {
	case CustomsOfficer:
		sql = `SELECT EXISTS (SELECT 1 FROM ports WHERE code = $1)`
	case Cashier, RefundPoint:
		sql = `SELECT EXISTS (SELECT 1 FROM desks WHERE code = $1)`
	case AgencyUser:
		sql = `SELECT EXISTS (SELECT 1 FROM agencies WHERE code = $1)`
	default:
		return nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, sql, e.Party).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %s: %w", e.URI, e.Party, ErrNoParty)
	}
	return nil
}

// bind queues the binding of c and its audit event; bound is false when c is already
// bound to its identity (nothing queued).
func (r *Register) bind(ctx context.Context, tx pgx.Tx, b *pgx.Batch, by string, c Certificate) (bound bool, err error) {
	var uri string
	err = tx.QueryRow(ctx, `SELECT uri FROM identity_certificates WHERE serial = $1`, c.Serial).Scan(&uri)
	switch {
	case err == nil && uri == c.URI:
		return false, nil
	case err == nil:
		return false, fmt.Errorf("serial %s: %w", c.Serial, ErrTaken)
	case !errors.Is(err, pgx.ErrNoRows):
		return false, err
	}
	key, _ := hex.DecodeString(c.KeyHash)
	b.Queue(`INSERT INTO identity_certificates (serial, spki_sha256, uri, not_after, registered_at, registered_by)
		VALUES ($1, $2, $3, $4, $5, $6)`, c.Serial, key, c.URI, c.NotAfter, r.now(), by)
	audit.Queue(b, by, "CERTIFICATE_BOUND", c.URI, uuid.Nil, map[string]any{"serial": c.Serial, "spki_sha256": c.KeyHash, "not_after": c.NotAfter})
	return true, nil
}

// lock reads an identity FOR UPDATE; found is false when there is none.
func (r *Register) lock(ctx context.Context, tx pgx.Tx, uri string) (e Entry, found bool, err error) {
	err = tx.QueryRow(ctx, `SELECT uri, kind, party, person, status, effective_at, reason FROM identities WHERE uri = $1 FOR UPDATE`, uri).
		Scan(&e.URI, &e.Kind, &e.Party, &e.Person, &e.Status, &e.EffectiveAt, &e.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, false, nil
	}
	return e, err == nil, err
}

// Rotate binds cert, a new certificate of a registered (or suspended) identity, and in
// the same transaction revokes every other certificate bound to that identity: the old
// ones stop working once the replacement is registered, not before. It returns the
// serials it revoked.
func (r *Register) Rotate(ctx context.Context, by string, cert *x509.Certificate, reason string) ([]string, error) {
	_, c, err := parse(cert)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "rotated"
	}
	var revoked []string
	err = db.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		revoked = nil
		cur, found, err := r.lock(ctx, tx, c.URI)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%s: %w (issue its first certificate with `taxrefund certs issue`)", c.URI, ErrNotFound)
		case cur.Status == Revoked:
			return fmt.Errorf("%s: %w", c.URI, ErrRevoked)
		}
		b := &pgx.Batch{}
		if _, err := r.bind(ctx, tx, b, by, c); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.serial FROM identity_certificates c WHERE c.uri = $1 AND c.serial <> $2
			AND NOT EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.serial = c.serial) ORDER BY c.serial`, c.URI, c.Serial)
		if err != nil {
			return err
		}
		if revoked, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, s := range revoked {
			queueRevocation(b, by, s, reason, r.now())
		}
		audit.Queue(b, by, "CERTIFICATE_ROTATED", c.URI, uuid.Nil, map[string]any{"serial": c.Serial, "revoked": revoked, "reason": reason})
		return db.SendBatch(ctx, tx, b)
	})
	return revoked, err
}

func queueRevocation(b *pgx.Batch, by, serial, reason string, at time.Time) {
	b.Queue(`INSERT INTO revoked_certificates (serial, revoked_at, revoked_by, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (serial) DO NOTHING`, serial, at, by, reason)
}

var serialPattern = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// NormalizeSerial reads a serial number in hex as the register keeps it: lower case,
// without colons or leading zeros ("0A:1B" and "a1b" are the same); ok is false when s
// is not one.
func NormalizeSerial(s string) (string, bool) {
	s = strings.TrimLeft(strings.ToLower(strings.ReplaceAll(s, ":", "")), "0")
	return s, serialPattern.MatchString(s)
}

// RevokeSerial revokes one certificate by its serial number (any certificate of the CA,
// a store's too: it goes on the revocation list the server checks). It returns the
// identity the certificate was bound to ("" for none). Revoking a revoked certificate
// changes nothing.
func (r *Register) RevokeSerial(ctx context.Context, by, serial, reason string) (string, error) {
	s, ok := NormalizeSerial(serial)
	if !ok {
		return "", fmt.Errorf("serial %q: not a certificate serial number in hex", serial)
	}
	var uri string
	err := db.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		uri = ""
		err := tx.QueryRow(ctx, `SELECT uri FROM identity_certificates WHERE serial = $1`, s).Scan(&uri)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE serial = $1)`, s).Scan(&done); err != nil || done {
			return err
		}
		b := &pgx.Batch{}
		queueRevocation(b, by, s, reason, r.now())
		audit.Queue(b, by, "CERTIFICATE_REVOKED", s, uuid.Nil, map[string]any{"identity": uri, "reason": reason})
		return db.SendBatch(ctx, tx, b)
	})
	return uri, err
}

// RevokeIdentity revokes a person or point for good, and with it every certificate bound
// to it. It returns the serials it revoked. Revoking a revoked identity changes nothing.
func (r *Register) RevokeIdentity(ctx context.Context, by, uri, reason string) ([]string, error) {
	var revoked []string
	err := db.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		revoked = nil
		cur, found, err := r.lock(ctx, tx, uri)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%s: %w", uri, ErrNotFound)
		case cur.Status == Revoked:
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT c.serial FROM identity_certificates c WHERE c.uri = $1
			AND NOT EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.serial = c.serial) ORDER BY c.serial`, uri)
		if err != nil {
			return err
		}
		if revoked, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		now := r.now()
		b := &pgx.Batch{}
		b.Queue(`UPDATE identities SET status = $2, effective_at = $3, reason = $4, changed_by = $5 WHERE uri = $1`, uri, Revoked, now, reason, by)
		for _, s := range revoked {
			queueRevocation(b, by, s, reason, now)
		}
		audit.Queue(b, by, "IDENTITY_REVOKED", uri, uuid.Nil, map[string]any{"reason": reason, "serials": revoked})
		return db.SendBatch(ctx, tx, b)
	})
	return revoked, err
}

// SetStatus suspends (SUSPENDED) or reinstates (REGISTERED) an identity; its
// certificates stay bound. A revoked identity stays revoked (ErrRevoked).
func (r *Register) SetStatus(ctx context.Context, by, uri, status, reason string) (Entry, error) {
	if status != Registered && status != Suspended {
		return Entry{}, fmt.Errorf("status %q: only %s and %s can be set (revoke with RevokeIdentity)", status, Suspended, Registered)
	}
	var out Entry
	err := db.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		cur, found, err := r.lock(ctx, tx, uri)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%s: %w", uri, ErrNotFound)
		case cur.Status == Revoked:
			return fmt.Errorf("%s: %w", uri, ErrRevoked)
		case cur.Status == status:
			out = cur
			return nil
		}
		cur.Status, cur.EffectiveAt, cur.Reason = status, r.now(), reason
		out = cur
		b := &pgx.Batch{}
		b.Queue(`UPDATE identities SET status = $2, effective_at = $3, reason = $4, changed_by = $5 WHERE uri = $1`, uri, status, cur.EffectiveAt, reason, by)
		audit.Queue(b, by, "IDENTITY_"+status, uri, uuid.Nil, map[string]any{"reason": reason})
		return db.SendBatch(ctx, tx, b)
	})
	return out, err
}

// Get returns an identity and its certificates, oldest first.
func (r *Register) Get(ctx context.Context, uri string) (Entry, []Certificate, error) {
	var e Entry
	err := r.pool.QueryRow(ctx, `SELECT uri, kind, party, person, status, effective_at, reason FROM identities WHERE uri = $1`, uri).
		Scan(&e.URI, &e.Kind, &e.Party, &e.Person, &e.Status, &e.EffectiveAt, &e.Reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, nil, fmt.Errorf("%s: %w", uri, ErrNotFound)
	}
	if err != nil {
		return Entry{}, nil, err
	}
	rows, err := r.pool.Query(ctx, `SELECT c.serial, encode(c.spki_sha256, 'hex'), c.uri, c.not_after,
			EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.serial = c.serial)
		FROM identity_certificates c WHERE c.uri = $1 ORDER BY c.registered_at, c.serial`, uri)
	if err != nil {
		return Entry{}, nil, err
	}
	certs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Certificate, error) {
		var c Certificate
		err := row.Scan(&c.Serial, &c.KeyHash, &c.URI, &c.NotAfter, &c.Revoked)
		return c, err
	})
	return e, certs, err
}

// IsRevoked reports whether a serial is on the revocation list.
func (r *Register) IsRevoked(ctx context.Context, serial string) (bool, error) {
	var revoked bool
	err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE serial = $1)`, serial).Scan(&revoked)
	return revoked, err
}

// IssueFile is Issue for the PEM certificate in path (pki's dir/<name>.pem). A store's
// certificate is left alone: registered is false.
func (r *Register) IssueFile(ctx context.Context, by, path string) (e Entry, registered bool, err error) {
	cert, err := pki.ReadCertificate(path)
	if err != nil {
		return Entry{}, false, err
	}
	e, err = r.Issue(ctx, by, cert)
	if errors.Is(err, ErrStore) {
		return Entry{}, false, nil
	}
	return e, err == nil, err
}
