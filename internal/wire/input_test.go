package wire_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"

	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
	"taxrefund/internal/wire"
)

// TestCountryAssigned: nationality and issuing_country take only officially assigned ISO
// 3166-1 alpha-2 codes: ZZ, user-assigned (XK, AA, QO), withdrawn (AN, SU, YU, CS) and
// exceptionally reserved (UK, EU, UN) codes are refused naming the field.
func TestCountryAssigned(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"FR", "GB", "CN", "HK", "MO", "TW", "US", "JP", "KR", "DE", "SS", "CW", "BQ", "AQ", "ZW"} {
		f := wire.NewFields()
		f.Country("traveller.nationality", c)
		f.Document("traveller.document", &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: "E12345678", IssuingCountry: c})
		if err := f.Err(); err != nil {
			t.Errorf("%s refused: %v", c, err)
		}
	}
	for _, c := range []string{"ZZ", "XK", "AA", "QO", "XX", "AN", "SU", "YU", "CS", "UK", "EU", "UN", "EZ", "fr", "F", "FRA", ""} {
		f := wire.NewFields()
		f.Country("traveller.nationality", c)
		f.Document("traveller.document", &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: "E12345678", IssuingCountry: c})
		err := f.Err()
		if err == nil || !strings.Contains(err.Error(), "traveller.nationality") || !strings.Contains(err.Error(), "traveller.document.issuing_country") {
			t.Errorf("%q: %v, want both fields refused", c, err)
		}
	}
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if wire.AssignedCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("%d assigned codes, want the 249 of ISO 3166-1", n)
	}
}

// TestRequestIDCanonical: a request_id in upper case is the same id as in lower case
// (the canonical form), and the request hashes the same, so a retry that changed only the
// case replays the first answer instead of answering REQUEST_ID_REUSED.
func TestRequestIDCanonical(t *testing.T) {
	t.Parallel()
	lower := "3f1c2a9e-8d4b-4c55-9a07-2b61e0c4d8f1"
	upper := strings.ToUpper(lower)
	f := wire.NewFields()
	a, b := f.RequestID("request_id", lower), f.RequestID("request_id", upper)
	if err := f.Err(); err != nil || a != b || a != uuid.MustParse(lower) {
		t.Fatalf("request ids %s and %s (%v), want the same", a, b, err)
	}
	req := func(id string) *storev1.VoidFormRequest {
		return &storev1.VoidFormRequest{RequestId: id, FormNumber: "TR7WN18WXAD59FQHJ7N", Reason: "goods returned"}
	}
	if !bytes.Equal(wire.CanonicalHash(req(lower)), wire.CanonicalHash(req(upper))) {
		t.Error("the same request with its request_id in upper case hashes differently")
	}
	u := req(upper)
	wire.CanonicalHash(u)
	if u.GetRequestId() != upper {
		t.Error("CanonicalHash changed the caller's message")
	}
	other := req(lower)
	other.Reason = "other"
	if bytes.Equal(wire.CanonicalHash(req(lower)), wire.CanonicalHash(other)) {
		t.Error("different requests hash the same")
	}
	// Other spellings uuid.Parse would take are refused: one canonical form and its case.
	for _, s := range []string{"{" + lower + "}", "urn:uuid:" + lower, strings.ReplaceAll(lower, "-", ""), "00000000-0000-0000-0000-000000000000"} {
		f := wire.NewFields()
		f.RequestID("request_id", s)
		if f.Err() == nil {
			t.Errorf("request_id %q accepted", s)
		}
	}
}
