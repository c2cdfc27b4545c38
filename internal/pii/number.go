package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	minNumberLen = 5
	maxNumberLen = 20

	// Domain-separation tags: the same key never authenticates two kinds of
	// message that could be confused.
	blindIndexTag  = "taxrefund/pii/blind-index/v1"
	fingerprintTag = "taxrefund/pii/fingerprint/v1"

	// The number field of a blind index is either normalized or, for input
	// NormalizeNumber rejects, the raw bytes; the two never collide.
	numberNormalized byte = 1
	numberRaw        byte = 2

	fingerprintBytes = 5 // 10 hex characters
	maxMaskLen       = 64
)

// NormalizeNumber returns the canonical form of a document number: ASCII
// spaces and hyphens removed, ASCII letters upper-cased. The result must be 5
// to 20 characters of [A-Z0-9]. Anything else (other whitespace, control
// characters, non-ASCII digits or letters, bidirectional or zero-width marks)
// is rejected. Errors never quote the number.
func NormalizeNumber(s string) (string, error) {
	n, bad := canonical(s)
	switch {
	case bad >= 0:
		// A non-ASCII character is reported at its first byte.
		return "", fmt.Errorf("document number: character at byte %d is not an ASCII letter, digit, space or hyphen", bad)
	case len(n) < minNumberLen || len(n) > maxNumberLen:
		return "", fmt.Errorf("document number: %d letters and digits, want %d to %d", len(n), minNumberLen, maxNumberLen)
	}
	return n, nil
}

// canonical drops ASCII spaces and hyphens and upper-cases ASCII letters. It
// returns the byte offset of the first other character, or -1 if none.
func canonical(s string) (string, int) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
		case c >= '0' && c <= '9', c >= 'A' && c <= 'Z':
			b.WriteByte(c)
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		default:
			return "", i
		}
	}
	return b.String(), -1
}

// BlindIndex returns the 32-byte HMAC-SHA256 under the index key of
// (docType, country, normalized number), each field length-prefixed so that
// no two different triples share an encoding. docType and country are
// compared with ASCII case folded ("passport" = "PASSPORT").
//
// Callers should validate number with NormalizeNumber first. A number it
// rejects is indexed by its raw bytes under a distinct marker, so it never
// matches a valid number, and equal raw input still gives an equal index.
func (kr *Keyring) BlindIndex(docType, country, number string) []byte {
	kind, num := numberNormalized, number
	if n, err := NormalizeNumber(number); err == nil {
		num = n
	} else {
		kind = numberRaw
	}
	mac := hmac.New(sha256.New, kr.index)
	mac.Write([]byte(blindIndexTag))
	writeField(mac, asciiUpper(docType))
	writeField(mac, asciiUpper(country))
	mac.Write([]byte{kind})
	writeField(mac, num)
	return mac.Sum(nil)
}

// writeField writes len(s) as 8 bytes big-endian, then s.
func writeField(w interface{ Write([]byte) (int, error) }, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	_, _ = w.Write(n[:])
	_, _ = w.Write([]byte(s))
}

func asciiUpper(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// Fingerprint returns 10 lowercase hex characters that identify a document
// in logs: a hash of its blind index, so equal documents share a fingerprint
// but neither the number nor the stored index can be read from it.
func (kr *Keyring) Fingerprint(docType, country, number string) string {
	h := sha256.New()
	h.Write([]byte(fingerprintTag))
	h.Write(kr.BlindIndex(docType, country, number))
	return hex.EncodeToString(h.Sum(nil)[:fingerprintBytes])
}

// Mask hides a document number for display. Spaces and hyphens are dropped
// and letters upper-cased as in NormalizeNumber; then every character but the
// last 4 becomes '*', or all but the last 2 when fewer than 6 remain (and at
// least one is always hidden). Input with any other character is masked
// entirely, so that no control or bidirectional character reaches a log or a
// screen.
func Mask(number string) string {
	n, bad := canonical(number)
	if bad >= 0 {
		return strings.Repeat("*", min(utf8.RuneCountInString(number), maxMaskLen))
	}
	keep := 4
	if len(n) < 6 {
		keep = 2
	}
	keep = max(0, min(keep, len(n)-1))
	return strings.Repeat("*", len(n)-keep) + n[len(n)-keep:]
}
