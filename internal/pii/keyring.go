// Package pii protects travellers' identity document numbers, which are
// personal information under China's Personal Information Protection Law.
//
// A number is stored twice, never in clear: encrypted with AES-256-GCM
// (Keyring.Seal, Keyring.Open) so it can be shown to an authorized party,
// and as a blind index, an HMAC-SHA256 of the normalized number
// (Keyring.BlindIndex), so that equality lookups ("all forms of this
// document") work without decrypting. Logs carry a Fingerprint or a Mask,
// never the number.
//
// Keys live in a text file, one per line, '#' starting a comment line:
//
//	# taxrefund PII keys
//	enc k1 <base64 of 32 random bytes>
//	enc k2 <base64 of 32 random bytes>
//	index <base64 of 32 random bytes>
//
// Every enc key decrypts; the last one encrypts new values (rotation appends
// a line, old rows keep their key id). There is exactly one index key: it
// cannot rotate without recomputing every stored blind index.
package pii

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

const (
	keySize      = 32 // AES-256 and the HMAC-SHA256 index key
	nonceSize    = 12
	maxKeyIDLen  = 32
	keyFileMode  = 0o600
	dirEnc       = "enc"
	dirIndex     = "index"
	keyIDPrefix  = "k"
	maxRotations = 1_000_000_000 // "k<n>" ids with larger n are ignored when numbering
	fileHeader   = "# taxrefund PII keys. Keep secret; never commit. Format: see package pii.\n"
)

// ErrDecrypt is returned by Open when the ciphertext does not authenticate
// under the named key and the given associated data. It deliberately does not
// say which of the three is wrong.
const ErrDecrypt = constError("pii: cannot decrypt: wrong key, associated data or ciphertext")

// constError is an error that can be declared as a constant.
type constError string

// Error returns the message.
func (e constError) Error() string { return string(e) }

// Keyring holds the encryption keys and the blind-index key. Make one with
// ParseKeyring or LoadKeyring; it is immutable and safe for concurrent use.
type Keyring struct {
	aeads   map[string]cipher.AEAD
	current string
	index   []byte
}

// ParseKeyring parses a key file. Errors name the offending line and never
// contain key material.
func ParseKeyring(data []byte) (*Keyring, error) {
	kr := &Keyring{aeads: make(map[string]cipher.AEAD)}
	seen := make(map[string]int) // key material -> line, to forbid reuse
	indexLine := 0
	lines := bytes.Split(data, []byte("\n"))
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSpace(string(raw))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case dirEnc:
			if len(f) != 3 {
				return nil, fmt.Errorf("key file line %d: want \"enc <key-id> <base64 key>\", got %d fields", n, len(f))
			}
			id := f[1]
			if !validKeyID(id) {
				return nil, fmt.Errorf("key file line %d: key id must be 1-%d characters of [A-Za-z0-9_-]", n, maxKeyIDLen)
			}
			if _, dup := kr.aeads[id]; dup {
				return nil, fmt.Errorf("key file line %d: key id %q appears twice", n, id)
			}
			key, err := decodeKey(f[2], n, seen)
			if err != nil {
				return nil, err
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return nil, fmt.Errorf("key file line %d: %w", n, err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return nil, fmt.Errorf("key file line %d: %w", n, err)
			}
			kr.aeads[id] = aead
			kr.current = id
		case dirIndex:
			if len(f) != 2 {
				return nil, fmt.Errorf("key file line %d: want \"index <base64 key>\", got %d fields", n, len(f))
			}
			if indexLine != 0 {
				return nil, fmt.Errorf("key file line %d: second index key (first on line %d)", n, indexLine)
			}
			key, err := decodeKey(f[1], n, seen)
			if err != nil {
				return nil, err
			}
			kr.index, indexLine = key, n
		default:
			// Not quoted: a stray line could be a pasted key.
			return nil, fmt.Errorf("key file line %d: unknown entry, want \"enc\" or \"index\"", n)
		}
	}
	if kr.current == "" {
		return nil, errors.New("key file: no enc key")
	}
	if indexLine == 0 {
		return nil, errors.New("key file: no index key")
	}
	return kr, nil
}

func decodeKey(s string, line int, seen map[string]int) ([]byte, error) {
	key, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key file line %d: key is not valid standard base64", line)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key file line %d: key is %d bytes, want %d", line, len(key), keySize)
	}
	if first, dup := seen[string(key)]; dup {
		return nil, fmt.Errorf("key file line %d: same key as line %d; every key must be distinct", line, first)
	}
	seen[string(key)] = line
	return key, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// LoadKeyring reads and parses the key file at path.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	kr, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// GenerateKeyFile creates path, mode 0600, with one fresh encryption key "k1"
// and one index key. If path already exists it is left untouched and nil is
// returned, so it is safe to run on every start of a development setup.
func GenerateKeyFile(path string) (err error) {
	enc, err := randomKey()
	if err != nil {
		return err
	}
	idx, err := randomKey()
	if err != nil {
		return err
	}
	content := fileHeader + encLine(keyIDPrefix+"1", enc) + dirIndex + " " + idx + "\n"

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	if _, err = f.WriteString(content); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// RotatedKeyFile returns the key file old with a new encryption key appended,
// and the new key's id ("k<n+1>", n being the highest numeric "k<n>" id
// present). The new key becomes the current one; the others still decrypt.
// old must parse. Writing the result back (mode 0600) is up to the caller.
func RotatedKeyFile(old []byte) ([]byte, string, error) {
	kr, err := ParseKeyring(old)
	if err != nil {
		return nil, "", fmt.Errorf("rotate: %w", err)
	}
	next := 1
	for id := range kr.aeads {
		if rest, ok := strings.CutPrefix(id, keyIDPrefix); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= next && n < maxRotations {
				next = n + 1
			}
		}
	}
	// Unused: every existing "k<digits>" id parsed to a number below next.
	id := keyIDPrefix + strconv.Itoa(next)
	key, err := randomKey()
	if err != nil {
		return nil, "", err
	}
	out := bytes.Clone(old)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, encLine(id, key)...)
	if _, err := ParseKeyring(out); err != nil { // never hand back a file that does not load
		return nil, "", fmt.Errorf("rotate: %w", err)
	}
	return out, id, nil
}

func encLine(id, b64 string) string {
	return dirEnc + " " + id + " " + b64 + "\n"
}

func randomKey() (string, error) {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// CurrentKeyID returns the id of the key Seal encrypts with: the last enc
// line of the key file.
func (kr *Keyring) CurrentKeyID() string {
	return kr.current
}

// Seal encrypts plaintext with the current key, binding it to aad (e.g. the
// row's table and id, so a ciphertext cannot be moved to another row). The
// ciphertext is a random 12-byte nonce followed by the GCM output. Store
// keyID beside it: Open needs it.
func (kr *Keyring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte, err error) {
	aead := kr.aeads[kr.current]
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return kr.current, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts a ciphertext made by Seal with key keyID and the same aad.
// A keyID missing from the key file is reported as such (an old key was
// dropped); any other mismatch (another key, another aad, altered or
// truncated bytes) is ErrDecrypt, which says nothing about which.
func (kr *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	aead, ok := kr.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("pii: unknown key id %q", truncate(keyID, maxKeyIDLen))
	}
	if len(ciphertext) < nonceSize+aead.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, ciphertext[:nonceSize], ciphertext[nonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Has reports whether the key file holds encryption key id.
func (kr *Keyring) Has(id string) bool {
	_, ok := kr.aeads[id]
	return ok
}
