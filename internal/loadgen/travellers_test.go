package loadgen

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	formv1 "taxrefund/api/taxrefund/form/v1"
)

func TestTravellerIsStableAndEligible(t *testing.T) {
	kinds := map[formv1.DocumentType]int{}
	for k := range 2000 {
		a, b := travellerOf("E", k), travellerOf("E", k)
		if a.doc.GetNumber() != b.doc.GetNumber() || a.lastEntry != b.lastEntry || a.doc.GetIssuingCountry() != b.doc.GetIssuingCountry() {
			t.Fatalf("traveller %d differs between calls", k)
		}
		if n := len(a.doc.GetNumber()); n < 5 || n > 20 {
			t.Fatalf("traveller %d: document number %q is not 5 to 20 characters", k, a.doc.GetNumber())
		}
		if a.doc.GetIssuingCountry() == "CN" {
			t.Fatalf("traveller %d holds a Chinese passport: not eligible", k)
		}
		if a.lastEntry < 0 || a.lastEntry > 183 {
			t.Fatalf("traveller %d entered %d days ago: outside the stay limit", k, a.lastEntry)
		}
		kinds[a.doc.GetType()]++
	}
	if kinds[formv1.DocumentType_DOCUMENT_TYPE_PASSPORT] < 1500 || kinds[formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT] == 0 ||
		kinds[formv1.DocumentType_DOCUMENT_TYPE_TAIWAN_PERMIT] == 0 {
		t.Errorf("document mix %v: want mostly passports and some permits", kinds)
	}
	if travellerOf("E", 1).doc.GetNumber() == travellerOf("Dx1", 1).doc.GetNumber() {
		t.Error("two populations share a document number")
	}
}

func TestIssueRequestShape(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC) // 01:00 on the 28th in Shanghai
	invoices := map[string]bool{}
	below, vat9, lines := 0, 0, 0
	for range 5000 {
		req := issueRequest(r, travellerOf("E", r.IntN(1000)), now, 0)
		n := len(req.GetLines())
		if n < 1 || n > 5 {
			t.Fatalf("%d lines, want 1 to 5", n)
		}
		wantInv := 1
		if n > 2 {
			wantInv = 2
		}
		if len(req.GetInvoices()) != wantInv {
			t.Fatalf("%d lines on %d invoices, want %d", n, len(req.GetInvoices()), wantInv)
		}
		on := map[string]bool{}
		for _, inv := range req.GetInvoices() {
			if inv.GetDate() != "2026-11-28" {
				t.Fatalf("invoice dated %s, want today in Shanghai, 2026-11-28", inv.GetDate())
			}
			if invoices[inv.GetNumber()] || len(inv.GetNumber()) != 20 {
				t.Fatalf("invoice number %q reused or not 20 digits", inv.GetNumber())
			}
			invoices[inv.GetNumber()] = true
			on[inv.GetNumber()] = true
		}
		var total float64
		for _, l := range req.GetLines() {
			if !on[l.GetInvoiceNumber()] {
				t.Fatalf("line on invoice %s, not in the request", l.GetInvoiceNumber())
			}
			whole, frac, ok := strings.Cut(l.GetAmount(), ".")
			if !ok || len(frac) != 2 {
				t.Fatalf("amount %q is not in fen", l.GetAmount())
			}
			f, _ := strconv.ParseFloat(whole+"."+frac, 64)
			if f < 80 || f > 2000 {
				t.Fatalf("amount %s outside 80.00 to 2000.00", l.GetAmount())
			}
			total += f
			if l.GetVatRate() == "0.09" {
				vat9++
			} else if l.GetVatRate() != "0.13" {
				t.Fatalf("VAT rate %s", l.GetVatRate())
			}
			lines++
		}
		if total < 200 {
			below++
		}
	}
	if below > 5000/20 {
		t.Errorf("%d of 5000 forms below the 200.00 minimum: want most forms to reach it", below)
	}
	if share := float64(vat9) / float64(lines); share < 0.25 || share > 0.35 {
		t.Errorf("%.0f%% of lines at 9%% VAT, want about 30%%", share*100)
	}
	// With a minimum per line (the desk travellers), every form reaches 200.00.
	for range 100 {
		for _, l := range issueRequest(r, travellerOf("D", 1), now, 250).GetLines() {
			if f, _ := strconv.ParseFloat(l.GetAmount(), 64); f < 250 {
				t.Fatalf("amount %s below the 250.00 asked for", l.GetAmount())
			}
		}
	}
}

// The Zipf law of the travellers is skewed but not absurd: the most frequent traveller
// makes well under 1% of the forms, the top 1% of travellers about half.
func TestZipfSkew(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	z := rand.NewZipf(r, ZipfS, ZipfV, IssueTravellers-1)
	const n = 200_000
	counts := map[uint64]int{}
	top1 := 0
	for range n {
		k := z.Uint64()
		counts[k]++
		if k < IssueTravellers/100 {
			top1++
		}
	}
	if share := float64(counts[0]) / n; share > 0.01 {
		t.Errorf("traveller 0 makes %.2f%% of the forms", share*100)
	}
	if share := float64(top1) / n; share < 0.35 || share > 0.65 {
		t.Errorf("the top 1%% of travellers make %.0f%% of the forms, want about half", share*100)
	}
}
