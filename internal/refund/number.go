package refund

import (
	"crypto/rand"
	"fmt"
	"regexp"
)

// Form numbers are "TR" + 16 random Crockford base-32 symbols (80 bits from crypto/rand,
// so a number says nothing about its neighbours) + 1 check symbol. They use only
// upper-case letters and digits, so they fit Code 128 barcodes and the QR alphanumeric
// mode, and the alphabet leaves out I, L, O and U, which people misread.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var numberPattern = regexp.MustCompile(`^TR[0-9A-HJKMNP-TV-Z]{17}$`)

// NewFormNumber returns a fresh random form number.
func NewFormNumber() string {
	var raw [10]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	b := make([]byte, 0, 19)
	b = append(b, 'T', 'R')
	// 80 bits → 16 symbols of 5 bits.
	var acc uint64
	bits := 0
	for _, x := range raw {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			b = append(b, crockford[(acc>>bits)&31])
		}
	}
	return string(append(b, checkSymbol(b[2:])))
}

// ValidFormNumber reports whether s is well formed and its check symbol matches, so a
// mistyped or misread number is refused without a database look-up.
func ValidFormNumber(s string) bool {
	return numberPattern.MatchString(s) && checkSymbol([]byte(s[2:18])) == s[18]
}

// checkSymbol is a weighted sum mod 32 with odd weights, which catches every single
// substituted symbol and most adjacent transpositions.
func checkSymbol(symbols []byte) byte {
	sum := 0
	for i, c := range symbols {
		v := 0
		for j := 0; j < len(crockford); j++ {
			if crockford[j] == c {
				v = j
				break
			}
		}
		sum += (2*i + 1) * v
	}
	return crockford[sum%32]
}
