package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"taxrefund/internal/auth"
	"taxrefund/internal/db"
	"taxrefund/internal/identity"
	"taxrefund/internal/pii"
	"taxrefund/internal/pki"
)

// certsSubcommands change the identity register (internal/identity), one identity or
// certificate at a time; plain `taxrefund certs` prepares a development machine.
var certsSubcommands = []string{"issue", "rotate", "revoke", "suspend", "reinstate"}

// certs writes a development CA, a server certificate for localhost, one client
// certificate per registered party — registering each official's, officer's, cashier's
// and agency user's identity and binding its certificate — and a PII key file:
// everything `make run` needs. Existing files are kept, unless the certificate was
// revoked (then it is replaced and the new one registered); an identity revoked for good
// gets no certificate.
func certs(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	pool, err := db.Open(ctx, cfg.databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.certsSub != "" {
		return certsChange(ctx, cfg, pool, stdout)
	}
	ca, err := pki.EnsureCA(cfg.certDir)
	if err != nil {
		return err
	}
	if err := ca.IssueServer(cfg.certDir, "server", []string{"localhost", "127.0.0.1", "::1"}); err != nil {
		return err
	}
	parties, err := devParties(ctx, pool)
	if err != nil {
		return err
	}
	reg := identity.New(pool, nil)
	const by = "taxrefund certs"
	for _, p := range parties {
		if err := ca.IssueClient(cfg.certDir, p.name, p.uri); err != nil {
			return fmt.Errorf("certificate %s: %w", p.name, err)
		}
		path := pki.CertPath(cfg.certDir, p.name)
		if err := renewIfRevoked(ctx, reg, ca, cfg.certDir, p.name, p.uri); err != nil {
			return err
		}
		_, _, err := reg.IssueFile(ctx, by, path)
		if errors.Is(err, identity.ErrRevoked) {
			log.Warn("identity revoked: its certificate is not registered", "identity", p.uri, "file", path)
			continue
		}
		if err != nil {
			return fmt.Errorf("register certificate %s: %w", p.name, err)
		}
	}
	if err := pii.GenerateKeyFile(cfg.piiKeys); err != nil {
		return err
	}
	log.Info("development certificates ready", "dir", cfg.certDir, "parties", len(parties), "pii_keys", cfg.piiKeys)
	fmt.Fprintf(stdout, "certificates in %s: ca.pem, server.pem and one <name>.pem/<name>-key.pem per party, e.g. store-CQ-JFB-001, customs-CKG, desk-CKG-01, authority\n", cfg.certDir)
	return nil
}

// renewIfRevoked replaces dir/<name>.pem with a new certificate when its serial is on
// the revocation list.
func renewIfRevoked(ctx context.Context, reg *identity.Register, ca *pki.CA, dir, name, uri string) error {
	cert, err := pki.ReadCertificate(pki.CertPath(dir, name))
	if err != nil {
		return err
	}
	revoked, err := reg.IsRevoked(ctx, cert.SerialNumber.Text(16))
	if err != nil || !revoked {
		return err
	}
	return ca.RenewClient(dir, name, uri)
}

type devParty struct{ name, uri string }

// devParties names a client certificate for every store, desk and port, and one for the
// tax authority.
func devParties(ctx context.Context, pool *pgxpool.Pool) ([]devParty, error) {
	rows, err := pool.Query(ctx, `
		SELECT 'store-' || code, 'taxrefund://store/' || code FROM stores
		UNION ALL SELECT 'desk-' || code, 'taxrefund://desk/' || code || '/cashier-01' FROM desks
		UNION ALL SELECT 'customs-' || code, 'taxrefund://customs/' || code || '/officer-01' FROM ports
		UNION ALL SELECT 'agency-' || code, 'taxrefund://agency/' || code || '/backoffice-01' FROM agencies
		UNION ALL SELECT 'authority', 'taxrefund://authority/sat-demo'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list parties: %w", err)
	}
	defer rows.Close()
	var out []devParty
	for rows.Next() {
		var p devParty
		if err := rows.Scan(&p.name, &p.uri); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// parseIdentity reads an identity URI as a certificate carries it.
func parseIdentity(s string) (auth.Party, error) {
	u, err := url.Parse(s)
	if err != nil {
		return auth.Party{}, fmt.Errorf("-uri %q: %w", s, err)
	}
	p, err := auth.ParseURI(u)
	if err != nil {
		return auth.Party{}, fmt.Errorf("-uri %q: %w", s, err)
	}
	return p, nil
}

// certName is the default file name of an identity's certificate: its role and
// segments joined by '-', e.g. desk-CKG-01-cashier-02 for taxrefund://desk/CKG-01/cashier-02.
func certName(p auth.Party) string {
	return strings.ReplaceAll(strings.TrimPrefix(p.URI, auth.Scheme+"://"), "/", "-")
}

// certsChange runs `taxrefund certs issue|rotate|revoke|suspend|reinstate`: each change
// is one transaction of the register with its audit event, whose actor is "certs:<-by>".
func certsChange(ctx context.Context, cfg config, pool *pgxpool.Pool, stdout io.Writer) error {
	reg := identity.New(pool, nil)
	by := "certs:" + cfg.by
	switch cfg.certsSub {
	case "revoke":
		if cfg.serial != "" {
			uri, err := reg.RevokeSerial(ctx, by, cfg.serial, cfg.reason)
			if err != nil {
				return err
			}
			s, _ := identity.NormalizeSerial(cfg.serial)
			if uri == "" {
				uri = "no registered identity: a store's, or unknown"
			}
			fmt.Fprintf(stdout, "revoked certificate %s (%s)\n", s, uri)
			return nil
		}
		serials, err := reg.RevokeIdentity(ctx, by, cfg.identity, cfg.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s for good, and its certificates %s\n", cfg.identity, listOrNone(serials))
		return nil
	case "suspend", "reinstate":
		status := map[string]string{"suspend": identity.Suspended, "reinstate": identity.Registered}[cfg.certsSub]
		e, err := reg.SetStatus(ctx, by, cfg.identity, status, cfg.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is %s since %s (%s)\n", e.URI, e.Status, e.EffectiveAt.UTC().Format("2006-01-02 15:04:05Z"), e.Reason)
		return nil
	}

	// issue and rotate write a key pair.
	p, err := parseIdentity(cfg.identity)
	if err != nil {
		return err
	}
	if _, ok := identity.Of(p); !ok {
		return fmt.Errorf("-uri %s: %w; plain `taxrefund certs` issues a certificate for every registered store", p.URI, identity.ErrStore)
	}
	name := cfg.certName
	if name == "" {
		name = certName(p)
	}
	cur, _, err := reg.Get(ctx, p.URI)
	switch {
	case errors.Is(err, identity.ErrNotFound) && cfg.certsSub == "rotate":
		return fmt.Errorf("%w: issue its first certificate with `taxrefund certs issue -uri %s`", err, p.URI)
	case err != nil && !errors.Is(err, identity.ErrNotFound):
		return err
	case err == nil && cur.Status == identity.Revoked:
		return fmt.Errorf("%s: %w", p.URI, identity.ErrRevoked)
	}
	ca, err := pki.EnsureCA(cfg.certDir)
	if err != nil {
		return err
	}
	path := pki.CertPath(cfg.certDir, name)
	keyPath := filepath.Join(cfg.certDir, name+"-key.pem")
	if cfg.certsSub == "rotate" {
		// The new pair first; the old certificate is revoked in the transaction that
		// registers the new one, never before.
		if err := ca.RenewClient(cfg.certDir, name, p.URI); err != nil {
			return err
		}
		cert, err := pki.ReadCertificate(path)
		if err != nil {
			return err
		}
		revoked, err := reg.Rotate(ctx, by, cert, cfg.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated %s: certificate %s in %s, key in %s; revoked %s\n",
			p.URI, cert.SerialNumber.Text(16), path, keyPath, listOrNone(revoked))
		return nil
	}
	if err := ca.IssueClient(cfg.certDir, name, p.URI); err != nil {
		return err
	}
	if err := renewIfRevoked(ctx, reg, ca, cfg.certDir, name, p.URI); err != nil {
		return err
	}
	e, _, err := reg.IssueFile(ctx, by, path)
	if err != nil {
		return err
	}
	cert, err := pki.ReadCertificate(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s of %s, %s; certificate %s in %s, key in %s\n",
		e.URI, e.Kind, e.Party, e.Status, cert.SerialNumber.Text(16), path, keyPath)
	return nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
