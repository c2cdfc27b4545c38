// Package anchor anchors the journal's and the audit log's hash chains outside the
// database. Whoever owns the tables can change a row and re-seal the whole chain so that
// it is consistent again; what they cannot do is sign: checkpoints of the chain heads are
// signed with an Ed25519 key kept in a file the database roles cannot read and appended,
// one JSON line each, to a checkpoint file outside the database. Check recomputes the
// chains from the rows and compares them with every checkpoint: a head that differs
// means the chain was re-sealed (or rows changed) since that checkpoint, and the first
// differing rows lie after the last checkpoint that still matches.
package anchor

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Default paths, relative to the working directory.
const (
	DefaultKeyFile        = ".data/journal.key"
	DefaultPublicKeyFile  = ".data/journal.pub"
	DefaultCheckpointFile = ".data/checkpoints.log"
)

// keyFile is the signing key file: the current key only.
type keyFile struct {
	KeyID   string    `json:"key_id"`
	Created time.Time `json:"created"`
	// Seed is the Ed25519 private key's 32-byte seed, base64.
	Seed string `json:"seed"`
}

// PublicKey is one line of the public key file: every key that ever signed, so that
// checkpoints signed before a rotation keep verifying.
type PublicKey struct {
	KeyID   string    `json:"key_id"`
	Created time.Time `json:"created"`
	// Key is the Ed25519 public key, base64.
	Key string `json:"public_key"`
}

// KeyID names a public key: the first 8 bytes of its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer signs checkpoints with the current key.
type Signer struct {
	ID  string
	key ed25519.PrivateKey
}

// Public returns the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// LoadSigner reads the signing key file. It refuses a file that its group or others may
// read: the key must stay with the service's user, away from the database's.
func LoadSigner(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("journal key %s has mode %v: it must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var k keyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("journal key %s: %w", path, err)
	}
	seed, err := base64.StdEncoding.DecodeString(k.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("journal key %s: the seed is not %d bytes of base64", path, ed25519.SeedSize)
	}
	s := &Signer{key: ed25519.NewKeyFromSeed(seed)}
	s.ID = KeyID(s.Public())
	if k.KeyID != s.ID {
		return nil, fmt.Errorf("journal key %s: key_id %q is not its key's id %s", path, k.KeyID, s.ID)
	}
	return s, nil
}

// PublicKeys are the keys checkpoints may be signed with, by key id.
type PublicKeys map[string]ed25519.PublicKey

// LoadPublicKeys reads the public key file. A line whose key_id is not its key's id is
// an error: the file is small and written only by `taxrefund keys`.
func LoadPublicKeys(path string) (PublicKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := PublicKeys{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var p PublicKey
		if err := json.Unmarshal(line, &p); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		key, err := base64.StdEncoding.DecodeString(p.Key)
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s line %d: public_key is not %d bytes of base64", path, n, ed25519.PublicKeySize)
		}
		if id := KeyID(key); id != p.KeyID {
			return nil, fmt.Errorf("%s line %d: key_id %q is not its key's id %s", path, n, p.KeyID, id)
		}
		out[p.KeyID] = key
	}
	return out, sc.Err()
}

// EnsureKey creates the signing key file (mode 0600) and adds its public key to the
// public key file, unless the key file exists; then it only makes sure its public key is
// listed. It returns the current key's id and whether it created it.
func EnsureKey(keyPath, pubPath string) (id string, created bool, err error) {
	if s, err := LoadSigner(keyPath); err == nil {
		return s.ID, false, addPublic(pubPath, s)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	s, err := writeKey(keyPath, pubPath, false)
	if err != nil {
		return "", false, err
	}
	return s.ID, true, nil
}

// RotateKey replaces the signing key with a new one; the old public key stays in the
// public key file, so that the checkpoints it signed keep verifying. It returns the old
// and the new key's ids.
func RotateKey(keyPath, pubPath string) (oldID, newID string, err error) {
	old, err := LoadSigner(keyPath)
	if err != nil {
		return "", "", fmt.Errorf("rotate: %w (create the key first with `taxrefund keys`)", err)
	}
	if err := addPublic(pubPath, old); err != nil {
		return "", "", err
	}
	s, err := writeKey(keyPath, pubPath, true)
	if err != nil {
		return "", "", err
	}
	return old.ID, s.ID, nil
}

// writeKey makes a key, lists its public key, then writes the key file: a key is never
// used before its public key is on record.
func writeKey(keyPath, pubPath string, replace bool) (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &Signer{key: priv}
	s.ID = KeyID(s.Public())
	if err := addPublic(pubPath, s); err != nil {
		return nil, err
	}
	b, err := json.Marshal(keyFile{KeyID: s.ID, Created: time.Now().UTC().Truncate(time.Second), Seed: base64.StdEncoding.EncodeToString(priv.Seed())})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, err
	}
	if !replace {
		f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		return s, closeAfter(f, append(b, '\n'))
	}
	// Replace atomically: a crash leaves the old key or the new one, never half of one.
	f, err := os.CreateTemp(filepath.Dir(keyPath), ".journal-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	if err := closeAfter(f, append(b, '\n')); err != nil {
		return nil, err
	}
	return s, os.Rename(f.Name(), keyPath)
}

// closeAfter writes b to f, syncs and closes it.
func closeAfter(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// addPublic appends s's public key to the public key file unless it is there.
func addPublic(pubPath string, s *Signer) error {
	keys, err := LoadPublicKeys(pubPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, ok := keys[s.ID]; ok {
		return nil
	}
	b, err := json.Marshal(PublicKey{KeyID: s.ID, Created: time.Now().UTC().Truncate(time.Second), Key: base64.StdEncoding.EncodeToString(s.Public())})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pubPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(pubPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	return closeAfter(f, append(b, '\n'))
}
