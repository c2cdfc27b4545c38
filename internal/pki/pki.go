// Package pki is the development certificate authority for mutual TLS.
//
// It creates (or loads) a local CA and issues server and client certificates
// from it, using ECDSA P-256 keys and the standard library only. A client
// certificate carries the caller's identity as exactly one URI SAN (see
// package auth for the grammar); pki does not interpret that URI.
//
// Files are PEM: certificates as "CERTIFICATE", keys as PKCS#8
// "PRIVATE KEY". Key files are written with mode 0600 and new directories
// with mode 0700. Every file is written to a temporary file first and then
// renamed, so a crash never leaves a half-written certificate or key behind.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names of the CA inside the directory given to EnsureCA.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 365 * 24 * time.Hour
	clockSkew      = 5 * time.Minute
	renewBefore    = 30 * 24 * time.Hour
	caCommonName   = "taxrefund development CA"
	organization   = "taxrefund (development)"
	keyFileMode    = 0o600
	certFileMode   = 0o644
	dirMode        = 0o700
	serialBits     = 128
	maxNameLength  = 64
	pemTypeCert    = "CERTIFICATE"
	pemTypePKCS8   = "PRIVATE KEY"
	pemTypeECKey   = "EC PRIVATE KEY"
	certFileSuffix = ".pem"
	keyFileSuffix  = "-key.pem"
)

// CA is a certificate authority whose certificate and key are held in memory.
// It is safe for concurrent use; it is never modified after EnsureCA returns.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// EnsureCA loads the CA from dir/ca.pem and dir/ca-key.pem, or creates both
// (and dir, with mode 0700) when neither exists. The created CA is valid for
// ten years, may sign certificates and CRLs, and may not sign intermediate
// CAs. Finding only one of the two files is an error: EnsureCA never replaces
// a CA key that certificates may already have been issued from.
func EnsureCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certExists, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return loadCA(certPath, keyPath)
	case certExists || keyExists:
		return nil, fmt.Errorf("incomplete CA in %s: need both %s and %s", dir, CACertFile, CAKeyFile)
	}
	return createCA(certPath, keyPath)
}

func createCA(certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{organization}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	if err := writeKeyPair(certPath, keyPath, der, key); err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

func loadCA(certPath, keyPath string) (*CA, error) {
	cert, err := readCertificate(certPath)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s may not sign certificates", certPath)
	}
	key, err := readECKey(keyPath)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", keyPath, certPath)
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate returns the CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate {
	return ca.cert
}

// Pool returns a new certificate pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// IssueServer writes dir/<name>.pem and dir/<name>-key.pem: a one-year server
// certificate (ExtKeyUsageServerAuth) whose SANs are hosts, each taken as an
// IP address when it parses as one and as a DNS name otherwise, e.g.
// "localhost", "127.0.0.1", "::1". An existing certificate is kept when it was
// issued by this CA for exactly these hosts, matches its key file and is valid
// for at least another 30 days.
func (ca *CA) IssueServer(dir, name string, hosts []string) error {
	if len(hosts) == 0 {
		return errors.New("issue server certificate: no hosts")
	}
	var dnsNames []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if h == "" {
			return errors.New("issue server certificate: empty host name")
		}
		dnsNames = append(dnsNames, h)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{organization}},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	matches := func(c *x509.Certificate) bool {
		return sameStrings(c.DNSNames, dnsNames) && sameIPs(c.IPAddresses, ips) && len(c.URIs) == 0
	}
	return ca.issue(dir, name, tmpl, x509.ExtKeyUsageServerAuth, matches)
}

// IssueClient writes dir/<name>.pem and dir/<name>-key.pem: a one-year client
// certificate (ExtKeyUsageClientAuth) with exactly one URI SAN, uri, which is
// also its CommonName. pki only checks that uri is an absolute URI; the caller
// validates the identity grammar (auth.ParseURI).
//
// IssueClient is idempotent: an existing certificate is kept, byte for byte,
// when it was issued by this CA for this URI alone, matches its key file and is
// valid for at least another 30 days. Otherwise both files are replaced.
func (ca *CA) IssueClient(dir, name string, uri string) error {
	tmpl, matches, err := clientTemplate(uri)
	if err != nil {
		return err
	}
	return ca.issue(dir, name, tmpl, x509.ExtKeyUsageClientAuth, matches)
}

// RenewClient is IssueClient that always writes a new key and certificate, with a new
// serial number, over dir/<name>.pem and dir/<name>-key.pem: a rotation.
func (ca *CA) RenewClient(dir, name string, uri string) error {
	tmpl, _, err := clientTemplate(uri)
	if err != nil {
		return err
	}
	never := func(*x509.Certificate) bool { return false }
	return ca.issue(dir, name, tmpl, x509.ExtKeyUsageClientAuth, never)
}

func clientTemplate(uri string) (*x509.Certificate, func(*x509.Certificate) bool, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: parse URI: %w", err)
	}
	if !u.IsAbs() || u.Opaque != "" {
		return nil, nil, fmt.Errorf("issue client certificate: %q is not an absolute hierarchical URI", uri)
	}
	if u.String() != uri {
		return nil, nil, fmt.Errorf("issue client certificate: %q is not in canonical form (%q)", uri, u.String())
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: uri, Organization: []string{organization}},
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	matches := func(c *x509.Certificate) bool {
		return len(c.URIs) == 1 && c.URIs[0].String() == uri &&
			len(c.DNSNames) == 0 && len(c.IPAddresses) == 0 && len(c.EmailAddresses) == 0
	}
	return tmpl, matches, nil
}

// ReadCertificate reads the one PEM certificate in path (dir/<name>.pem).
func ReadCertificate(path string) (*x509.Certificate, error) {
	return readCertificate(path)
}

// CertPath is the certificate file of name in dir, as IssueClient writes it.
func CertPath(dir, name string) string {
	return filepath.Join(dir, name+certFileSuffix)
}

// issue signs tmpl unless dir/<name>.pem already holds a certificate that
// verifies against this CA for usage, satisfies matches and fits its key file.
func (ca *CA) issue(dir, name string, tmpl *x509.Certificate, usage x509.ExtKeyUsage, matches func(*x509.Certificate) bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	certPath := filepath.Join(dir, name+certFileSuffix)
	keyPath := filepath.Join(dir, name+keyFileSuffix)
	if ca.keep(certPath, keyPath, usage, matches) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key for %s: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("sign certificate for %s: %w", name, err)
	}
	return writeKeyPair(certPath, keyPath, der, key)
}

// keep reports whether the certificate and key at certPath and keyPath can
// stay as they are. Any problem reading them means "no": they get replaced.
func (ca *CA) keep(certPath, keyPath string, usage x509.ExtKeyUsage, matches func(*x509.Certificate) bool) bool {
	cert, err := readCertificate(certPath)
	if err != nil {
		return false
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: time.Now().Add(renewBefore),
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil || !matches(cert) {
		return false
	}
	key, err := readECKey(keyPath)
	if err != nil {
		return false
	}
	return key.PublicKey.Equal(cert.PublicKey)
}

// ServerTLSConfig returns a TLS 1.3 server configuration that presents the
// certificate in certFile/keyFile and requires a client certificate that
// verifies against the CA certificates in caFile.
func ServerTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load server key pair: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		// crypto/x509 takes a certificate without the extended key usage extension as
		// good for any use: a client must hold one that says clientAuth.
		VerifyConnection: RequireClientAuthEKU,
	}, nil
}

// RequireClientAuthEKU refuses a connection whose client certificate does not list the
// clientAuth extended key usage explicitly (a server certificate, or one with no
// extended key usage at all, is not a login).
func RequireClientAuthEKU(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	if !slices.Contains(cs.PeerCertificates[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("the client certificate does not have the clientAuth extended key usage")
	}
	return nil
}

// ClientTLSConfig returns a TLS 1.3 client configuration that presents the
// certificate in certFile/keyFile and trusts only the CA certificates in
// caFile for a server named serverName.
func ClientTLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client key pair: %w", err)
	}
	if serverName == "" {
		return nil, errors.New("client TLS config: empty server name")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemTypeCert {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: unexpected data after the certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

func readECKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	switch block.Type {
	case pemTypePKCS8:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an ECDSA key", path)
		}
		return ec, nil
	case pemTypeECKey:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%s: unexpected PEM block %q", path, block.Type)
	}
}

// writeKeyPair writes the key before the certificate: if the process dies in
// between, the next run sees a certificate that does not match its key and
// issues a new pair instead of trusting a stale one.
func writeKeyPair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8, Bytes: pkcs8})
	if err := writeFileAtomic(keyPath, keyPEM, keyFileMode); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der})
	return writeFileAtomic(certPath, certPEM, certFileMode)
}

// writeFileAtomic writes data to a temporary file beside path, with mode
// perm from the start, and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialBits))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

// checkName keeps file names plain: no path separators, no hidden files, no
// "..", so that dir/<name>.pem always stays inside dir.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLength || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("invalid certificate name %q", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("invalid certificate name %q", name)
		}
	}
	return nil
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, x.Equal) {
			return false
		}
	}
	for _, y := range b {
		if !slices.ContainsFunc(a, y.Equal) {
			return false
		}
	}
	return true
}
