package wire_test

import (
	"strings"
	"testing"

	"taxrefund/internal/fault"
	"taxrefund/internal/wire"
)

// TestText: free text is stored in Unicode NFC, counted after normalization, and refused
// when it is invalid UTF-8, too long, missing, or holds a control character (C0, DEL,
// C1) or a bidirectional mark, embedding, override or isolate.
func TestText(t *testing.T) {
	t.Parallel()
	const (
		control  = "must not contain control, bidirectional-override, zero-width or line-separator characters"
		tooLong  = "must be at most 10 characters"
		required = "is required"
		badUTF8  = "must be valid UTF-8"
	)
	cases := []struct {
		name     string
		in       string
		optional bool
		want     string // the stored text
		violated string // "" when accepted
	}{
		{"ASCII", "Silk scarf", false, "Silk scarf", ""},
		{"e + combining acute → é", "e\u0301", false, "\u00e9", ""},
		{"already NFC", "\u00e9t\u00e9", false, "\u00e9t\u00e9", ""},
		{"ohm sign → omega", "\u2126", false, "\u03a9", ""},
		{"Hangul jamo → syllable", "\u1112\u1161\u11ab", false, "\ud55c", ""},
		{"Chinese", "普洱茶", false, "普洱茶", ""},
		{"Arabic with no marks", "شاي", false, "شاي", ""},
		{"10 characters after NFC (20 before)", strings.Repeat("e\u0301", 10), false, strings.Repeat("\u00e9", 10), ""},
		{"11 characters", strings.Repeat("é", 11), false, strings.Repeat("é", 11), tooLong},
		{"RIGHT-TO-LEFT OVERRIDE U+202E", "abc\u202edef", false, "", control},
		{"ZERO WIDTH SPACE U+200B", "a\u200bb", false, "", control},
		{"ZERO WIDTH JOINER U+200D", "a\u200db", false, "", control},
		{"BYTE ORDER MARK U+FEFF", "\ufeffabc", false, "", control},
		{"LINE SEPARATOR U+2028", "a\u2028b", false, "", control},
		{"PARAGRAPH SEPARATOR U+2029", "a\u2029b", false, "", control},
		{"LEFT-TO-RIGHT EMBEDDING U+202A", "\u202aabc", false, "", control},
		{"LEFT-TO-RIGHT ISOLATE U+2066", "a\u2066b", false, "", control},
		{"POP DIRECTIONAL ISOLATE U+2069", "a\u2069", false, "", control},
		{"RIGHT-TO-LEFT MARK U+200F", "a\u200f", false, "", control},
		{"LEFT-TO-RIGHT MARK U+200E", "\u200ea", false, "", control},
		{"ARABIC LETTER MARK U+061C", "\u061ca", false, "", control},
		{"NUL", "a\x00b", false, "", control},
		{"DEL", "a\x7fb", false, "", control},
		{"newline", "a\nb", false, "", control},
		{"tab", "a\tb", false, "", control},
		{"C1 NEXT LINE U+0085", "a\u0085b", false, "", control},
		{"C1 U+009B (CSI)", "a\u009b31m", false, "", control},
		{"invalid UTF-8", "a\xffb", false, "", badUTF8},
		{"truncated UTF-8", "\xe6\x99", false, "", badUTF8},
		{"empty, required", "", false, "", required},
		{"empty, optional", "", true, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := wire.NewFields()
			got := f.Text("description", c.in, 10, c.optional)
			err := f.Err()
			if c.violated == "" {
				if err != nil {
					t.Fatalf("Text(%+q) refused: %v", c.in, err)
				}
				if got != c.want {
					t.Errorf("Text(%+q) = %+q, want %+q", c.in, got, c.want)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Invalid || len(fe.Violations) != 1 ||
				fe.Violations[0].Field != "description" || fe.Violations[0].Description != c.violated {
				t.Fatalf("Text(%+q): %v, want one violation of description: %q", c.in, err, c.violated)
			}
		})
	}
}
