package pii

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// key returns the base64 of 32 bytes all equal to b.
func key(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

func mustParse(t *testing.T, data string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring([]byte(data))
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return kr
}

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	return mustParse(t, "# test keys\nenc k1 "+key(1)+"\nindex "+key(9)+"\n")
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	pt := []byte("E12345678")
	aad := []byte("traveller_document:42")
	id, ct, err := kr.Seal(pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != "k1" || kr.CurrentKeyID() != "k1" {
		t.Fatalf("Seal key id = %q, CurrentKeyID = %q; want k1", id, kr.CurrentKeyID())
	}
	if want := 12 + len(pt) + 16; len(ct) != want {
		t.Errorf("ciphertext length = %d, want nonce 12 + %d + tag 16 = %d", len(ct), len(pt), want)
	}
	if bytes.Contains(ct, pt) {
		t.Error("ciphertext contains the plaintext")
	}
	got, err := kr.Open(id, ct, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, want %q", got, pt)
	}

	_, ct2, err := kr.Seal(pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ct, ct2) || bytes.Equal(ct[:12], ct2[:12]) {
		t.Error("two seals of the same plaintext share a nonce or ciphertext")
	}

	// Empty plaintext and nil aad round-trip too.
	id, ct, err = kr.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.Open(id, ct, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty round trip: %q, %v", got, err)
	}
}

func TestOpenFailures(t *testing.T) {
	kr := mustParse(t, "enc k1 "+key(1)+"\nenc k2 "+key(2)+"\nindex "+key(9)+"\n")
	aad := []byte("row:1")
	id, ct, err := kr.Seal([]byte("G12345678"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != "k2" {
		t.Fatalf("Seal used %q, want the last key k2", id)
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	nonceFlip := bytes.Clone(ct)
	nonceFlip[0] ^= 1

	cases := []struct {
		name  string
		id    string
		ct    []byte
		aad   []byte
		quiet bool // the error must not say why
	}{
		{"wrong aad", id, ct, []byte("row:2"), true},
		{"missing aad", id, ct, nil, true},
		{"other known key", "k1", ct, aad, true},
		{"unknown key id", "k3", ct, aad, false},
		{"empty key id", "", ct, aad, false},
		{"altered tag", id, tampered, aad, true},
		{"altered nonce", id, nonceFlip, aad, true},
		{"truncated", id, ct[:27], aad, true},
		{"empty", id, nil, aad, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := kr.Open(tc.id, tc.ct, tc.aad)
			if err == nil {
				t.Fatalf("Open succeeded with %q", pt)
			}
			if tc.quiet && !errors.Is(err, ErrDecrypt) {
				t.Errorf("error %q reveals which check failed", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old := "enc k1 " + key(1) + "\nindex " + key(9) // no final newline
	k1 := mustParse(t, old)
	aad := []byte("row:7")
	id1, ct1, err := k1.Seal([]byte("P1234567"), aad)
	if err != nil || id1 != "k1" {
		t.Fatalf("Seal before rotation: %q, %v", id1, err)
	}

	rotated, newID, err := RotatedKeyFile([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if newID != "k2" {
		t.Fatalf("new key id = %q, want k2", newID)
	}
	if !bytes.HasPrefix(rotated, []byte(old)) {
		t.Error("rotation changed the existing lines")
	}
	k2 := mustParse(t, string(rotated))
	if k2.CurrentKeyID() != "k2" {
		t.Fatalf("CurrentKeyID after rotation = %q, want k2", k2.CurrentKeyID())
	}
	if pt, err := k2.Open(id1, ct1, aad); err != nil || string(pt) != "P1234567" {
		t.Fatalf("old ciphertext after rotation: %q, %v", pt, err)
	}
	id2, ct2, err := k2.Seal([]byte("P7654321"), aad)
	if err != nil || id2 != "k2" {
		t.Fatalf("Seal after rotation used %q, %v; want k2", id2, err)
	}
	if _, err := k1.Open(id2, ct2, aad); err == nil {
		t.Error("the old keyring opened a ciphertext of the new key")
	}
	// The blind index key is unchanged, so indexes stay comparable.
	if !bytes.Equal(k1.BlindIndex("PASSPORT", "FRA", "P1234567"), k2.BlindIndex("PASSPORT", "FRA", "P1234567")) {
		t.Error("rotation changed blind indexes")
	}

	again, id3, err := RotatedKeyFile(rotated)
	if err != nil || id3 != "k3" {
		t.Fatalf("second rotation: %q, %v; want k3", id3, err)
	}
	if k3 := mustParse(t, string(again)); k3.CurrentKeyID() != "k3" {
		t.Fatalf("CurrentKeyID after second rotation = %q", k3.CurrentKeyID())
	}

	// Numbering follows the highest k<n>, whatever the order of lines.
	odd := "enc k7 " + key(7) + "\nenc legacy " + key(3) + "\nindex " + key(9) + "\n"
	if _, id, err := RotatedKeyFile([]byte(odd)); err != nil || id != "k8" {
		t.Fatalf("rotation after k7: %q, %v; want k8", id, err)
	}
	if _, _, err := RotatedKeyFile([]byte("index " + key(9))); err == nil {
		t.Error("rotating an invalid key file succeeded")
	}
}

func TestBlindIndex(t *testing.T) {
	kr := testKeyring(t)
	a := kr.BlindIndex("PASSPORT", "FRA", "E 1234-5678")
	if len(a) != 32 {
		t.Fatalf("blind index is %d bytes, want 32", len(a))
	}
	equal := [][3]string{
		{"PASSPORT", "FRA", "e12345678"},
		{"PASSPORT", "FRA", "E12345678"},
		{"PASSPORT", "FRA", "E-1234 5678"},
		{"passport", "fra", "E12345678"},
	}
	for _, in := range equal {
		if !bytes.Equal(a, kr.BlindIndex(in[0], in[1], in[2])) {
			t.Errorf("BlindIndex%v differs from BlindIndex(PASSPORT, FRA, E 1234-5678)", in)
		}
	}
	different := [][3]string{
		{"PASSPORT", "DEU", "E12345678"},
		{"HK_MACAO_PERMIT", "FRA", "E12345678"},
		{"PASSPORT", "FRA", "E12345679"},
		// Naive concatenation would make these equal to PASSPORT|FRA|E12345678.
		{"PASSPORTF", "RA", "E12345678"},
		{"PASSPORT", "FRAE", "12345678"},
		{"PASSPORT", "", "FRAE12345678"},
	}
	for _, in := range different {
		if bytes.Equal(a, kr.BlindIndex(in[0], in[1], in[2])) {
			t.Errorf("BlindIndex%v equals BlindIndex(PASSPORT, FRA, E12345678)", in)
		}
	}

	// Another index key gives another index: it is keyed, not a plain hash.
	other := mustParse(t, "enc k1 "+key(1)+"\nindex "+key(8)+"\n")
	if bytes.Equal(a, other.BlindIndex("PASSPORT", "FRA", "E12345678")) {
		t.Error("blind index does not depend on the index key")
	}
	// The encryption key does not matter.
	sameIndex := mustParse(t, "enc k1 "+key(2)+"\nindex "+key(9)+"\n")
	if !bytes.Equal(a, sameIndex.BlindIndex("PASSPORT", "FRA", "E12345678")) {
		t.Error("blind index depends on the encryption key")
	}

	// Invalid numbers are indexed deterministically and never match a valid one.
	bad := kr.BlindIndex("PASSPORT", "FRA", "E1234567８")
	if !bytes.Equal(bad, kr.BlindIndex("PASSPORT", "FRA", "E1234567８")) {
		t.Error("blind index of an invalid number is not deterministic")
	}
	if bytes.Equal(bad, kr.BlindIndex("PASSPORT", "FRA", "E12345678")) {
		t.Error("an invalid number matches a valid one")
	}
}

func TestFingerprint(t *testing.T) {
	kr := testKeyring(t)
	f := kr.Fingerprint("PASSPORT", "FRA", "E 1234-5678")
	if len(f) != 10 {
		t.Fatalf("fingerprint %q has %d characters, want 10", f, len(f))
	}
	if _, err := hex.DecodeString(f); err != nil || strings.ToLower(f) != f {
		t.Fatalf("fingerprint %q is not lowercase hex", f)
	}
	if g := kr.Fingerprint("PASSPORT", "FRA", "e12345678"); g != f {
		t.Errorf("fingerprints of the same document differ: %q vs %q", f, g)
	}
	if g := kr.Fingerprint("PASSPORT", "DEU", "E12345678"); g == f {
		t.Error("fingerprints of different documents are equal")
	}
	if idx := hex.EncodeToString(kr.BlindIndex("PASSPORT", "FRA", "E12345678")); strings.Contains(idx, f) {
		t.Error("fingerprint is a piece of the stored blind index")
	}
}

func TestNormalizeNumber(t *testing.T) {
	good := map[string]string{
		"E12345678":            "E12345678",
		"e 1234-5678":          "E12345678",
		"  g1234 5678 ":        "G12345678",
		"12345":                "12345",
		"ab-cd-ef":             "ABCDEF",
		"A1B2C3D4E5F6G7H8I9J0": "A1B2C3D4E5F6G7H8I9J0",
		"--1 2 3 4 5--":        "12345",
	}
	for in, want := range good {
		got, err := NormalizeNumber(in)
		if err != nil || got != want {
			t.Errorf("NormalizeNumber(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"empty":               "",
		"only separators":     " - - ",
		"too short":           "1234",
		"too short after":     "12-34",
		"too long":            "A1B2C3D4E5F6G7H8I9J0K",
		"tab":                 "E1234\t5678",
		"newline":             "E12345678\n",
		"NUL":                 "E1234\x005678",
		"DEL":                 "E12345678\x7f",
		"dot":                 "E1234.5678",
		"slash":               "E1234/5678",
		"Arabic-Indic digits": "E١٢٣٤٥٦٧٨",
		"fullwidth digits":    "Ｅ１２３４５６７８",
		"RLO bidi override":   "E1234\u202e5678",
		"LRM mark":            "\u200eE12345678",
		"zero-width space":    "E1234\u200b5678",
		"no-break space":      "E1234\u00a05678",
		"en dash":             "E1234\u20135678",
		"Cyrillic E":          "\u041512345678",
		"dotless i":           "\u013112345678",
		"Kelvin sign":         "\u212a12345678",
		"long s":              "\u017f12345678",
		"invalid UTF-8":       "E1234\xff5678",
	}
	for name, in := range bad {
		n, err := NormalizeNumber(in)
		if err == nil {
			t.Errorf("%s: NormalizeNumber(%q) = %q, want error", name, in, n)
			continue
		}
		if len(in) >= 5 && strings.Contains(err.Error(), in) {
			t.Errorf("%s: error %q quotes the number", name, err)
		}
	}
}

// FuzzNormalizeNumber checks the properties of every accepted number.
func FuzzNormalizeNumber(f *testing.F) {
	for _, s := range []string{"E 1234-5678", "12345", "ｅ12345", "A\u202e12345", "abcdefghijklmnopqrst"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeNumber(s)
		if err != nil {
			return
		}
		if len(n) < 5 || len(n) > 20 {
			t.Fatalf("%q -> %q: length %d", s, n, len(n))
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("%q -> %q: byte %q", s, n, c)
			}
		}
		if again, err := NormalizeNumber(n); err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if m := Mask(s); len(m) != len(n) || !strings.HasSuffix(n, strings.TrimLeft(m, "*")) {
			t.Fatalf("Mask(%q) = %q does not fit the normalized %q", s, m, n)
		}
	})
}

func TestMask(t *testing.T) {
	cases := map[string]string{
		"E12345678":    "*****5678",
		"e 1234-5678":  "*****5678",
		"123456":       "**3456",
		"12345":        "***45",
		"1234":         "**34",
		"123":          "*23",
		"12":           "*2",
		"1":            "*",
		"":             "",
		"E1234\u202e5": "*******",
		"１２３４５６":       "******",
		"E12345678\n":  "**********",
	}
	for in, want := range cases {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseKeyringErrors(t *testing.T) {
	enc1, enc2, idx := "enc k1 "+key(1), "enc k2 "+key(2), "index "+key(9)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	cases := []struct {
		name, file, want string
	}{
		{"unknown entry", "# keys\n" + enc1 + "\nmac " + key(3) + "\n" + idx, "line 3"},
		{"enc without key", enc1 + "\n\nenc k2\n" + idx, "line 3"},
		{"enc with extra field", enc1 + " extra\n" + idx, "line 1"},
		{"index with extra field", enc1 + "\nindex " + key(9) + " " + key(8), "line 2"},
		{"bad base64", enc1 + "\nenc k2 not*base64\n" + idx, "line 2"},
		{"unpadded base64", enc1 + "\nenc k2 " + strings.TrimRight(key(2), "=") + "\n" + idx, "line 2"},
		{"short key", enc1 + "\nenc k2 " + short + "\n" + idx, "line 2"},
		{"duplicate key id", enc1 + "\n" + idx + "\nenc k1 " + key(2), "line 3"},
		{"bad key id", "enc k/1 " + key(1) + "\n" + idx, "line 1"},
		{"second index", enc1 + "\n" + idx + "\n# again\nindex " + key(8), "line 4"},
		{"reused key material", enc1 + "\nenc k2 " + key(1) + "\n" + idx, "line 2"},
		{"index equal to an enc key", enc1 + "\n" + enc2 + "\nindex " + key(2), "line 3"},
		{"bare key on a line", enc1 + "\n" + key(3) + "\n" + idx, "line 2"},
		{"no index", enc1 + "\n" + enc2, "no index key"},
		{"no enc", "# nothing\n" + idx, "no enc key"},
		{"empty", "", "no enc key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyring([]byte(tc.file))
			if err == nil {
				t.Fatal("ParseKeyring succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			for _, b := range []byte{1, 2, 3, 8, 9} {
				if strings.Contains(err.Error(), key(b)[:20]) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
}

func TestParseKeyringFormat(t *testing.T) {
	// CRLF line ends, indentation, comments and blank lines are fine; the
	// last enc line is current even when the index line comes between.
	file := "# keys\r\n\r\n  enc old-1 " + key(1) + "\r\nindex " + key(9) + "\r\n\t# rotated\r\nenc k2 " + key(2) + "\r\n"
	kr := mustParse(t, file)
	if kr.CurrentKeyID() != "k2" {
		t.Fatalf("CurrentKeyID = %q, want k2", kr.CurrentKeyID())
	}
	old := mustParse(t, "enc old-1 "+key(1)+"\nindex "+key(9))
	id, ct, err := old.Seal([]byte("X12345"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(id, ct, nil); err != nil {
		t.Fatalf("key old-1 from the CRLF file does not open its ciphertext: %v", err)
	}
}

func TestGenerateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pii.keys")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %o, want 600", fi.Mode().Perm())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if kr.CurrentKeyID() != "k1" {
		t.Errorf("CurrentKeyID = %q, want k1", kr.CurrentKeyID())
	}
	if n := strings.Count(string(first), "\nenc "); n != 1 {
		t.Errorf("generated file has %d enc lines, want 1", n)
	}

	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("second GenerateKeyFile rewrote an existing key file")
	}

	// Two generated files hold different keys.
	other := filepath.Join(t.TempDir(), "pii.keys")
	if err := GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	kr2, err := LoadKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(kr.BlindIndex("PASSPORT", "FRA", "E12345678"), kr2.BlindIndex("PASSPORT", "FRA", "E12345678")) {
		t.Error("two generated key files share the index key")
	}

	if err := GenerateKeyFile(filepath.Join(t.TempDir(), "missing-dir", "pii.keys")); err == nil {
		t.Error("GenerateKeyFile in a missing directory succeeded")
	}
	if _, err := LoadKeyring(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("LoadKeyring of a missing file succeeded")
	}
}

func ExampleMask() {
	fmt.Println(Mask("E 1234-5678"))
	// Output: *****5678
}
