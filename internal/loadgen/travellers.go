package loadgen

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	formv1 "taxrefund/api/taxrefund/form/v1"
	storev1 "taxrefund/api/taxrefund/store/v1"
)

// shanghai is the local time of every "same day" (DOMAIN.md §3): UTC+8, no daylight saving.
var shanghai = time.FixedZone("Asia/Shanghai", 8*60*60)

// today is the Asia/Shanghai date, "YYYY-MM-DD".
func today(now time.Time) time.Time {
	y, m, d := now.In(shanghai).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// The traveller populations. Issuing draws travellers from a Zipf law over
// IssueTravellers documents, P(k) ∝ (ZipfV + k)^-ZipfS: a few travellers shop a lot, most
// once (the pgbench baseline draws from the same law). The desk mix uses its own
// travellers, each with one or two forms, so that FindForms returns a desk-sized answer.
const (
	IssueTravellers = 200_000
	ZipfS           = 1.1
	ZipfV           = 100.0
)

var countries = []string{"US", "FR", "DE", "GB", "JP", "KR", "AU", "IT", "ES", "SG", "TH", "MY", "CA", "NL", "NZ", "RU", "BR"}

// traveller is one synthetic traveller, the same every time for the same population and
// index: foreign passports mostly, some Hong Kong/Macao and Taiwan permits, last entry
// within the 183-day stay limit.
type traveller struct {
	doc         *formv1.Document
	nationality string
	lastEntry   int // days before today
}

func travellerOf(population string, k int) traveller {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s:%d", population, k)
	x := h.Sum64()
	t := traveller{lastEntry: int(x % 170)}
	num := population + strconv.Itoa(10_000_000+k)
	switch x % 20 {
	case 0, 1:
		t.doc = &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_HK_MACAO_PERMIT, Number: "H" + num, IssuingCountry: "HK"}
	case 2:
		t.doc = &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_TAIWAN_PERMIT, Number: "T" + num, IssuingCountry: "TW"}
	default:
		c := countries[(x>>8)%uint64(len(countries))]
		t.doc = &formv1.Document{Type: formv1.DocumentType_DOCUMENT_TYPE_PASSPORT, Number: "P" + num, IssuingCountry: c}
	}
	t.nationality = t.doc.IssuingCountry
	return t
}

// issueRequest builds a realistic IssueForm request: 1–5 lines of general goods, 70% at
// 13% VAT and 30% at 9%, 80.00 to 2,000.00 each (so most forms reach the 200.00 minimum on
// their own), one invoice for up to two lines and two for more, invoice numbers unique
// (64 random bits), dated today. minAmount > 0 raises every line to at least that.
func issueRequest(r *rand.Rand, t traveller, now time.Time, minAmount int) *storev1.IssueFormRequest {
	day := today(now)
	nlines := 1 + r.IntN(5)
	ninv := 1
	if nlines > 2 {
		ninv = 2
	}
	req := &storev1.IssueFormRequest{
		RequestId: newRequestID(r),
		Traveller: &storev1.Traveller{
			Document:           t.doc,
			DocumentExpiryDate: day.AddDate(2, 0, 0).Format(time.DateOnly),
			Nationality:        t.nationality,
			LastEntryDate:      day.AddDate(0, 0, -t.lastEntry).Format(time.DateOnly),
		},
	}
	for range ninv {
		req.Invoices = append(req.Invoices, &formv1.Invoice{
			Number: fmt.Sprintf("%020d", r.Uint64()/2),
			Date:   day.Format(time.DateOnly),
		})
	}
	for i := range nlines {
		vat := "0.13"
		if r.IntN(10) < 3 {
			vat = "0.09"
		}
		fen := 8_000 + r.IntN(192_001)
		if minAmount > 0 {
			fen = max(fen, minAmount*100)
		}
		req.Lines = append(req.Lines, &storev1.LineInput{
			Description:   "bench item " + strconv.Itoa(r.IntN(1000)),
			Category:      formv1.GoodsCategory_GOODS_CATEGORY_GENERAL,
			VatRate:       vat,
			Quantity:      int32(1 + r.IntN(3)),
			Amount:        fmt.Sprintf("%d.%02d", fen/100, fen%100),
			InvoiceNumber: req.Invoices[i%ninv].Number,
		})
	}
	return req
}

// randReader makes a *rand.Rand an io.Reader, for request ids that cost no system call.
type randReader struct{ r *rand.Rand }

func (rr randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(rr.r.Uint32())
	}
	return len(p), nil
}

// storeCode is the code of bench store i (1-based).
func storeCode(i int) string { return fmt.Sprintf("BENCH-%04d", i) }
